package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// writeKeyPair writes priv and its public key as PEM files in dir and
// returns their paths.
func writeKeyPair(t *testing.T, dir, name string, priv crypto.Signer) (privFile, pubFile string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	privFile, pubFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub.pem")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return privFile, pubFile
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const bundleRego = `package mcpauthz.authz

default decision := {"allowed": false, "http_status": 403}

decision := {"allowed": true} if input.identity.org_role in data.allowed_roles
`

const bundleTestRego = `package mcpauthz.authz_test

import data.mcpauthz.authz

test_admin_allowed if authz.decision.allowed with input as {"identity": {"org_role": "admin"}}

test_viewer_denied if not authz.decision.allowed with input as {"identity": {"org_role": "viewer"}}
`

const failingTestRego = `package mcpauthz.authz_test

import data.mcpauthz.authz

test_viewer_allowed if authz.decision.allowed with input as {"identity": {"org_role": "viewer"}}
`

type cmdResult struct {
	code           int
	stdout, stderr string
}

func runBundleCmd(t *testing.T, args ...string) cmdResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, nil, &stdout, &stderr)
	return cmdResult{code, stdout.String(), stderr.String()}
}

func TestBundleCommands(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string]string{
		"authz/authz.rego":      bundleRego,
		"authz/authz_test.rego": bundleTestRego,
		"data.json":             `{"allowed_roles": ["admin"]}`,
	})
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, rsaPub := writeKeyPair(t, dir, "rsa", rsaPriv)
	_, otherPub := writeKeyPair(t, dir, "other", otherPriv)
	ecKey, ecPub := writeKeyPair(t, dir, "ec", ecPriv)
	built := filepath.Join(dir, "bundle.tar.gz")
	signed := filepath.Join(dir, "signed.tar.gz")
	signedEC := filepath.Join(dir, "signed-ec.tar.gz")

	// Steps run in order: later ones use the files earlier ones wrote.
	steps := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
	}{
		{"ok/build", []string{"bundle", "build", src, "-o", built, "-revision", "2026.06.1"}, 0,
			[]string{"revision 2026.06.1", "roots allowed_roles, mcpauthz/authz"}},
		{"ok/sign RS256", []string{"bundle", "sign", built, "-key", rsaKey, "-keyid", "release", "-o", signed}, 0,
			[]string{"keyid release (RS256)"}},
		{"ok/sign ES256, flags first", []string{"bundle", "sign", "-key", ecKey, "-keyid", "release-ec", "-alg", "ES256", "-o", signedEC, built}, 0,
			[]string{"keyid release-ec (ES256)"}},
		{"ok/verify RS256", []string{"bundle", "verify", signed, "-pubkey", rsaPub, "-keyid", "release"}, 0,
			[]string{"revision 2026.06.1", "keyid release (RS256)"}},
		{"ok/verify ES256", []string{"bundle", "verify", signedEC, "-pubkey", ecPub, "-keyid", "release-ec"}, 0, nil},
		{"fail/verify with another key", []string{"bundle", "verify", signed, "-pubkey", otherPub, "-keyid", "release"}, 1, nil},
		{"fail/verify with another key id", []string{"bundle", "verify", signed, "-pubkey", rsaPub, "-keyid", "staging"}, 1, nil},
		{"fail/verify with the RSA key an ES256 signature", []string{"bundle", "verify", signedEC, "-pubkey", rsaPub, "-keyid", "release-ec"}, 1, nil},
		{"fail/verify an unsigned bundle", []string{"bundle", "verify", built, "-pubkey", rsaPub, "-keyid", "release"}, 1, nil},
		{"fail/verify with a scope the signature lacks", []string{"bundle", "verify", signed, "-pubkey", rsaPub, "-keyid", "release", "-scope", "prod"}, 1, nil},
		{"ok/inspect", []string{"bundle", "inspect", signed}, 0,
			[]string{"revision:  2026.06.1", "keyid release, RS256", "data.mcpauthz.authz\n", "data.mcpauthz.authz_test\n", "/.signatures.json", "/authz/authz.rego", "allowed_roles, mcpauthz/authz"}},
		{"ok/inspect unsigned", []string{"bundle", "inspect", built}, 0, []string{"signature: none"}},
		{"ok/test the built bundle", []string{"bundle", "test", built}, 0, []string{"PASS: 2, FAIL: 0"}},
		{"fail/build without -o", []string{"bundle", "build", src}, 2, nil},
		{"fail/sign without -keyid", []string{"bundle", "sign", built, "-key", rsaKey, "-o", signed}, 2, nil},
		{"fail/sign with an unknown algorithm", []string{"bundle", "sign", built, "-key", rsaKey, "-keyid", "k", "-alg", "HS256"}, 2, nil},
		{"fail/sign an RSA key as ES256", []string{"bundle", "sign", built, "-key", rsaKey, "-keyid", "k", "-alg", "ES256", "-o", signed}, 1, nil},
		{"fail/verify without -keyid", []string{"bundle", "verify", signed, "-pubkey", rsaPub}, 2, nil},
		{"fail/unknown subcommand", []string{"bundle", "publish", built}, 2, nil},
		{"fail/two bundles", []string{"bundle", "inspect", built, signed}, 2, nil},
		// The failed signing above did not touch the signed bundle.
		{"ok/verify again", []string{"bundle", "verify", signed, "-pubkey", rsaPub, "-keyid", "release"}, 0, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := runBundleCmd(t, st.args...)
			if r.code != st.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, st.wantCode, r.stdout, r.stderr)
			}
			for _, want := range st.wantStdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if st.wantCode == 1 && !strings.HasPrefix(r.stderr, "mcpauthz: ") {
				t.Errorf("stderr: %q", r.stderr)
			}
		})
	}
}

func TestBundleTestCommand(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		wantCode   int
		wantStdout []string
	}{
		{"ok/passing tests", map[string]string{"authz.rego": bundleRego, "authz_test.rego": bundleTestRego, "data.json": `{"allowed_roles": ["admin"]}`},
			0, []string{"PASS: 2, FAIL: 0, ERROR: 0"}},
		{"fail/a failing test", map[string]string{"authz.rego": bundleRego, "authz_test.rego": bundleTestRego, "more_test.rego": failingTestRego,
			"data.json": `{"allowed_roles": ["admin"]}`}, 1, []string{"FAIL  data.mcpauthz.authz_test.test_viewer_allowed", "PASS: 2, FAIL: 1"}},
		{"fail/no tests", map[string]string{"authz.rego": bundleRego}, 1, []string{"PASS: 0, FAIL: 0"}},
		{"fail/does not parse", map[string]string{"authz.rego": bundleRego + "\ndecision := {\n"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tt.files)
			r := runBundleCmd(t, "bundle", "test", dir)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}
}

// TestSidecarVerifiesBundle: with policy.verification the sidecar starts
// only on a signed bundle and keeps it when a reload is rejected.
func TestSidecarVerifiesBundle(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string]string{"authz.rego": bundleRego, "data.json": `{"allowed_roles": ["admin"]}`})
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := writeKeyPair(t, dir, "ec", priv)
	unsigned := filepath.Join(dir, "unsigned.tar.gz")
	signed := filepath.Join(dir, "signed.tar.gz")
	for _, args := range [][]string{
		{"bundle", "build", src, "-o", unsigned, "-revision", "r1"},
		{"bundle", "sign", unsigned, "-key", keyFile, "-keyid", "k1", "-alg", "ES256", "-o", signed},
	} {
		if r := runBundleCmd(t, args...); r.code != 0 {
			t.Fatalf("%v: %d %s", args, r.code, r.stderr)
		}
	}
	config := func(bundle string, v VerificationConfig) Config {
		cfg := Defaults()
		cfg.GRPC.Addr = "127.0.0.1:0"
		cfg.Admin.Addr = ""
		cfg.HTTP.Addr = ""
		cfg.Policy.Bundle = bundle
		cfg.Policy.Watch = false
		cfg.Policy.Verification = v
		return cfg
	}
	good := VerificationConfig{PublicKeyFile: pubFile, KeyID: "k1"}

	validate := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok/verification", config(signed, good), ""},
		{"ok/no verification", config(unsigned, VerificationConfig{}), ""},
		{"fail/no keyid", config(signed, VerificationConfig{PublicKeyFile: pubFile}), "policy.verification: keyid is required"},
		{"fail/no key", config(signed, VerificationConfig{KeyID: "k1"}), "policy.verification: public_key_file is required"},
		{"fail/private key", config(signed, VerificationConfig{PublicKeyFile: keyFile, KeyID: "k1"}), "policy.verification"},
		{"fail/missing key file", config(signed, VerificationConfig{PublicKeyFile: filepath.Join(dir, "nope.pem"), KeyID: "k1"}), "policy.verification"},
		{"fail/embedded bundle", config("", good), "policy.verification: set policy.bundle"},
	}
	for _, tt := range validate {
		t.Run("validate/"+tt.name, func(t *testing.T) {
			expectErr(t, tt.cfg.Validate(), tt.wantErr)
		})
	}

	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if _, err := buildSidecar(ctx, config(unsigned, good), nil, log); !errors.Is(err, bundles.ErrSignature) {
		t.Fatalf("sidecar on an unsigned bundle: %v, want ErrSignature", err)
	}
	live := filepath.Join(dir, "live.tar.gz")
	copyFile(t, signed, live)
	s, err := buildSidecar(ctx, config(live, good), nil, log)
	if err != nil {
		t.Fatalf("sidecar on a signed bundle: %v", err)
	}
	defer s.close()
	if rev := s.engine.Status().Revision; rev != "r1" {
		t.Fatalf("revision %q", rev)
	}
	copyFile(t, unsigned, live) // as a SIGHUP reload would find it
	if err := s.source.Load(ctx); !errors.Is(err, bundles.ErrSignature) {
		t.Fatalf("reload of an unsigned bundle: %v, want ErrSignature", err)
	}
	if st := s.engine.Status(); st.Revision != "r1" || st.Failures != 1 {
		t.Fatalf("status after the rejected reload: %+v", st)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
