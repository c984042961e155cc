package bundles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// testKey is a signing key and its PEM halves.
type testKey struct {
	priv, pub []byte
	alg       string
}

func rsaKey(tb testing.TB, bits int) testKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatal(err)
	}
	return pemKey(tb, k, &k.PublicKey, bundles.RS256)
}

func ecKey(tb testing.TB, curve elliptic.Curve) testKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return pemKey(tb, k, &k.PublicKey, bundles.ES256)
}

func pemKey(tb testing.TB, priv crypto.Signer, pub crypto.PublicKey, alg string) testKey {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{
		priv: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pub:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		alg:  alg,
	}
}

// buildBundle builds files into an archive at path, signed with key as
// keyID unless key is nil, and returns the path.
func buildBundle(tb testing.TB, path string, files map[string]string, revision string, key *testKey, keyID string) string {
	tb.Helper()
	src := tb.TempDir()
	writeFiles(tb, src, files)
	b, err := bundles.Build(src, bundles.BuildOptions{Revision: revision})
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	if key != nil {
		if err := bundles.Sign(b, key.priv, keyID, key.alg); err != nil {
			tb.Fatalf("Sign: %v", err)
		}
	}
	writeBundle(tb, path, b)
	return path
}

func writeBundle(tb testing.TB, path string, b *bundle.Bundle) {
	tb.Helper()
	var buf bytes.Buffer
	if err := bundles.Write(&buf, b); err != nil {
		tb.Fatalf("Write: %v", err)
	}
	// Replace by rename, as a deployment would.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// rewriteTarball changes the files of an archive in place: edit returns a
// file's new content, or nil to drop it; add appends files.
func rewriteTarball(tb testing.TB, path string, edit func(name string, data []byte) []byte, add map[string]string) {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	put := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			tb.Fatal(err)
		}
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatal(err)
		}
		if edit != nil {
			if data = edit(h.Name, data); data == nil {
				continue
			}
		}
		put(h.Name, data)
	}
	for name, body := range add {
		put(name, []byte(body))
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func verification(tb testing.TB, key testKey, keyID, scope string) *bundles.Verification {
	tb.Helper()
	v, err := bundles.NewVerification(key.pub, keyID, scope)
	if err != nil {
		tb.Fatalf("NewVerification: %v", err)
	}
	return v
}

func TestSignedBundles(t *testing.T) {
	rsa1, rsa2, ec1 := rsaKey(t, 2048), rsaKey(t, 2048), ecKey(t, elliptic.P256())
	tamper := func(name string, data []byte) []byte {
		if strings.HasSuffix(name, "authz.rego") {
			return append(data, []byte("\ndecision := {\"allowed\": true} if input.role == \"viewer\"\n")...)
		}
		return data
	}
	tests := []struct {
		name    string
		key     *testKey // nil: unsigned
		signAs  string
		change  func(t *testing.T, path string)
		verify  *bundles.Verification
		wantErr error // nil: loads
	}{
		{name: "ok/RS256 round trip", key: &rsa1, signAs: "ci", verify: verification(t, rsa1, "ci", "")},
		{name: "ok/ES256 round trip", key: &ec1, signAs: "ci-ec", verify: verification(t, ec1, "ci-ec", "")},
		{name: "ok/signed bundle without verification", key: &rsa1, signAs: "ci"},
		{name: "ok/unsigned bundle without verification"},
		{name: "fail/unsigned", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature},
		// Refused for the signature before its Rego is parsed: not as Rego
		// that does not parse.
		{name: "fail/unsigned, with Rego that does not parse", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature,
			change: func(t *testing.T, p string) {
				rewriteTarball(t, p, func(name string, data []byte) []byte {
					if strings.HasSuffix(name, "authz.rego") {
						return append(data, []byte("\ndecision := {\n")...)
					}
					return data
				}, nil)
			}},
		{name: "fail/rego changed after signing", key: &rsa1, signAs: "ci", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature,
			change: func(t *testing.T, p string) { rewriteTarball(t, p, tamper, nil) }},
		{name: "fail/data changed after signing", key: &rsa1, signAs: "ci", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature,
			change: func(t *testing.T, p string) {
				rewriteTarball(t, p, func(name string, data []byte) []byte {
					if name == "/data.json" {
						return []byte(`{"roles": {"allowed": ["admin", "member", "viewer"]}}`)
					}
					return data
				}, nil)
			}},
		{name: "fail/file added after signing", key: &rsa1, signAs: "ci", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature,
			change: func(t *testing.T, p string) {
				rewriteTarball(t, p, nil, map[string]string{"/authz/extra.rego": "package mcpauthz.authz\n\nextra := true\n"})
			}},
		{name: "fail/file removed after signing", key: &rsa1, signAs: "ci", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature,
			change: func(t *testing.T, p string) {
				rewriteTarball(t, p, func(name string, data []byte) []byte {
					if name == "/data.json" {
						return nil
					}
					return data
				}, nil)
			}},
		{name: "fail/signatures removed", key: &rsa1, signAs: "ci", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature,
			change: func(t *testing.T, p string) {
				rewriteTarball(t, p, func(name string, data []byte) []byte {
					if name == "/.signatures.json" {
						return nil
					}
					return data
				}, nil)
			}},
		{name: "fail/signed by another key under the same key id", key: &rsa2, signAs: "ci", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature},
		{name: "fail/signed by an EC key, RSA key configured", key: &ec1, signAs: "ci", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature},
		{name: "fail/right key, signature names another key id", key: &rsa1, signAs: "other", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature},
		{name: "fail/right key, signature names no key id", verify: verification(t, rsa1, "ci", ""), wantErr: bundles.ErrSignature,
			change: func(t *testing.T, p string) {
				b, err := bundles.LoadPath(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.GenerateSignature(bundle.NewSigningConfig(string(rsa1.priv), "RS256", ""), "", true); err != nil {
					t.Fatal(err)
				}
				writeBundle(t, p, b)
			}},
		{name: "fail/scope mismatch", key: &rsa1, signAs: "ci", verify: verification(t, rsa1, "ci", "write"), wantErr: bundles.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := buildBundle(t, filepath.Join(t.TempDir(), "bundle.tar.gz"), policyFiles, "rev-1", tt.key, tt.signAs)
			if tt.change != nil {
				tt.change(t, path)
			}
			var opts []bundles.LoadOption
			if tt.verify != nil {
				opts = append(opts, bundles.WithVerification(tt.verify))
			}
			b, err := bundles.LoadPath(path, opts...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("LoadPath: %v, want %v", err, tt.wantErr)
				}
				t.Logf("rejected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("LoadPath: %v", err)
			}
			if got := bundles.Revision(b); got != "rev-1" {
				t.Errorf("revision %q", got)
			}
			e := newEngine(t)
			if err := e.Activate(context.Background(), b, path); err != nil {
				t.Fatal(err)
			}
			if got := decide(t, e, map[string]any{"role": "admin"}); got != `{"allowed": true}` {
				t.Errorf("decision %s", got)
			}
		})
	}
}

func TestSignedDirectory(t *testing.T) {
	key := rsaKey(t, 2048)
	v := verification(t, key, "ci", "")
	dir := t.TempDir()
	writeFiles(t, dir, policyFiles)
	b, err := bundles.Build(dir, bundles.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bundles.Sign(b, key.priv, "ci", bundles.RS256); err != nil {
		t.Fatal(err)
	}
	sigs, err := json.Marshal(b.Signatures)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{".signatures.json": string(sigs)})
	// The directory has no .manifest, which the signature covers.
	if _, err := bundles.LoadPath(dir, bundles.WithVerification(v)); !errors.Is(err, bundles.ErrSignature) {
		t.Fatalf("directory without the signed manifest: %v, want ErrSignature", err)
	}
	manifest, err := json.Marshal(b.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{".manifest": string(manifest)})
	if _, err := bundles.LoadPath(dir, bundles.WithVerification(v)); err != nil {
		t.Fatalf("signed directory: %v", err)
	}
	writeFiles(t, dir, map[string]string{"authz/authz.rego": roleRego + "\n# edited\n"})
	if _, err := bundles.LoadPath(dir, bundles.WithVerification(v)); !errors.Is(err, bundles.ErrSignature) {
		t.Fatalf("edited signed directory: %v, want ErrSignature", err)
	}
}

func TestNewVerification(t *testing.T) {
	rsa1 := rsaKey(t, 2048)
	tests := []struct {
		name  string
		pem   []byte
		keyID string
		alg   string // "" when it fails
	}{
		{"ok/RSA", rsa1.pub, "ci", bundles.RS256},
		{"ok/P-256", ecKey(t, elliptic.P256()).pub, "ci", bundles.ES256},
		{"fail/no key id", rsa1.pub, "", ""},
		{"fail/not PEM", []byte("ssh-rsa AAAA"), "ci", ""},
		{"fail/a private key", rsa1.priv, "ci", ""},
		{"fail/RSA 1024", rsaKey(t, 1024).pub, "ci", ""},
		{"fail/P-384", ecKey(t, elliptic.P384()).pub, "ci", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := bundles.NewVerification(tt.pem, tt.keyID, "")
			if tt.alg == "" {
				if err == nil {
					t.Fatal("NewVerification succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Algorithm() != tt.alg || v.KeyID() != tt.keyID {
				t.Errorf("got %s %s", v.Algorithm(), v.KeyID())
			}
		})
	}
}

func TestSignRejects(t *testing.T) {
	rsa1, ec1 := rsaKey(t, 2048), ecKey(t, elliptic.P256())
	tests := []struct {
		name       string
		key        []byte
		keyID, alg string
	}{
		{"fail/no key id", rsa1.priv, "", bundles.RS256},
		{"fail/RSA key for ES256", rsa1.priv, "ci", bundles.ES256},
		{"fail/EC key for RS256", ec1.priv, "ci", bundles.RS256},
		{"fail/P-384 key", ecKey(t, elliptic.P384()).priv, "ci", bundles.ES256},
		{"fail/public key", rsa1.pub, "ci", bundles.RS256},
		{"fail/not PEM", []byte("secret"), "ci", "HS256"},
		{"fail/HMAC", []byte("-----BEGIN X-----\n-----END X-----\n"), "ci", "HS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := loadFS(t, policyFiles)
			if err := bundles.Sign(b, tt.key, tt.keyID, tt.alg); err == nil {
				t.Fatal("Sign succeeded")
			}
			if len(b.Signatures.Signatures) != 0 {
				t.Fatal("a rejected Sign left a signature")
			}
		})
	}
}

func TestBuildManifest(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"authz/authz.rego": roleRego,
		"authz/util.rego":  "package mcpauthz.authz.util\n\nx := 1\n",
		"other/o.rego":     "package other\n\ny := 2\n",
		"data.json":        roleData,
	})
	b, err := bundles.Build(dir, bundles.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *b.Manifest.Roots, []string{"mcpauthz/authz", "other", "roles"}; !slices.Equal(got, want) {
		t.Errorf("roots %q, want %q", got, want)
	}
	if !strings.HasPrefix(b.Manifest.Revision, "sha256:") {
		t.Errorf("revision %q, want a digest", b.Manifest.Revision)
	}
	if _, err := bundles.Build(dir, bundles.BuildOptions{Roots: []string{"mcpauthz"}}); err == nil {
		t.Error("Build with roots that leave out a package succeeded")
	}
	path := filepath.Join(t.TempDir(), "b.tar.gz")
	writeBundle(t, path, b)
	back, err := bundles.LoadPath(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Manifest.Revision != b.Manifest.Revision || !slices.Equal(*back.Manifest.Roots, *b.Manifest.Roots) {
		t.Errorf("manifest after a round trip: %v", back.Manifest)
	}
}

func TestInspect(t *testing.T) {
	key := ecKey(t, elliptic.P256())
	path := buildBundle(t, filepath.Join(t.TempDir(), "b.tar.gz"), policyFiles, "rev-7", &key, "release-2026")
	info, err := bundles.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision != "rev-7" || info.Signature == nil || info.Signature.KeyID != "release-2026" || info.Signature.Algorithm != "ES256" {
		t.Fatalf("info %+v sig %+v", info, info.Signature)
	}
	if !slices.Equal(info.Packages, []string{"data.mcpauthz.authz"}) {
		t.Errorf("packages %v", info.Packages)
	}
	if !slices.Contains(info.Files, "/.signatures.json") || !slices.Contains(info.Files, "/authz/authz.rego") {
		t.Errorf("files %v", info.Files)
	}
	unsigned := buildBundle(t, filepath.Join(t.TempDir(), "u.tar.gz"), policyFiles, "", nil, "")
	if info, err := bundles.Inspect(unsigned); err != nil || info.Signature != nil {
		t.Fatalf("unsigned: %+v, %v", info, err)
	}
}

// TestEngineKeepsVerifiedPolicy: a bundle that fails verification never
// replaces the active one, whether loaded directly or by the watcher.
func TestEngineKeepsVerifiedPolicy(t *testing.T) {
	key, other := rsaKey(t, 2048), rsaKey(t, 2048)
	v := verification(t, key, "ci", "")
	viewerFiles := map[string]string{
		"authz/authz.rego": roleRego,
		"data.json":        `{"roles": {"allowed": ["admin", "member", "viewer"]}}`,
	}
	tests := []struct {
		name    string
		replace func(t *testing.T, path string)
	}{
		{"fail/unsigned", func(t *testing.T, p string) { buildBundle(t, p, viewerFiles, "rev-2", nil, "") }},
		{"fail/another key", func(t *testing.T, p string) { buildBundle(t, p, viewerFiles, "rev-2", &other, "ci") }},
		{"fail/another key id", func(t *testing.T, p string) { buildBundle(t, p, viewerFiles, "rev-2", &key, "old") }},
		{"fail/tampered", func(t *testing.T, p string) {
			buildBundle(t, p, policyFiles, "rev-2", &key, "ci")
			rewriteTarball(t, p, func(name string, data []byte) []byte {
				if name == "/data.json" {
					return []byte(viewerFiles["data.json"])
				}
				return data
			}, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/Load", func(t *testing.T) {
			path := buildBundle(t, filepath.Join(t.TempDir(), "bundle.tar.gz"), policyFiles, "rev-1", &key, "ci")
			e := newEngine(t)
			load := func() (*bundle.Bundle, error) { return bundles.LoadPath(path, bundles.WithVerification(v)) }
			if err := e.Load(context.Background(), path, load); err != nil {
				t.Fatal(err)
			}
			tt.replace(t, path)
			if err := e.Load(context.Background(), path, load); !errors.Is(err, bundles.ErrSignature) {
				t.Fatalf("reload: %v, want ErrSignature", err)
			}
			st := e.Status()
			if st.Revision != "rev-1" || st.Failures != 1 || !strings.Contains(st.LastError, "signature") {
				t.Errorf("status %+v", st)
			}
			if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": false, "http_status": 403}` {
				t.Errorf("decision for viewer %s", got)
			}
		})
		t.Run(tt.name+"/Watcher", func(t *testing.T) {
			path := buildBundle(t, filepath.Join(t.TempDir(), "bundle.tar.gz"), policyFiles, "rev-1", &key, "ci")
			e := newEngine(t)
			w, err := bundles.NewWatcher(e, path, watchDebounce, slog.New(slog.DiscardHandler), bundles.WithVerification(v))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			t.Cleanup(func() { cancel(); <-done })
			if err := w.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			go func() { done <- w.Run(ctx) }()
			eventually(t, "the rejected bundle", func() { tt.replace(t, path) }, func() bool { return e.Status().Failures > 0 })
			if st := e.Status(); st.Revision != "rev-1" {
				t.Errorf("revision after a rejected bundle: %q", st.Revision)
			}
			eventually(t, "the next signed bundle", func() {
				buildBundle(t, path, viewerFiles, "rev-3", &key, "ci")
			}, func() bool { return e.Status().Revision == "rev-3" })
			if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": true}` {
				t.Errorf("decision for viewer after rev-3 %s", got)
			}
		})
	}
}

// TestSignedBundleThatDoesNotParse: a bundle whose signature verifies but
// whose Rego does not parse fails for its Rego, not for its signature.
func TestSignedBundleThatDoesNotParse(t *testing.T) {
	key := rsaKey(t, 2048)
	path := buildBundle(t, filepath.Join(t.TempDir(), "bundle.tar.gz"), policyFiles, "rev-1", nil, "")
	b, err := bundles.LoadPath(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Modules {
		b.Modules[i].Raw = append(b.Modules[i].Raw, "\ndecision := {\n"...)
	}
	if err := bundles.Sign(b, key.priv, "ci", bundles.RS256); err != nil {
		t.Fatal(err)
	}
	writeBundle(t, path, b)
	_, err = bundles.LoadPath(path, bundles.WithVerification(verification(t, key, "ci", "")))
	var parse ast.Errors
	if err == nil || errors.Is(err, bundles.ErrSignature) || !errors.As(err, &parse) {
		t.Fatalf("LoadPath: %v, want a parse error", err)
	}
}
