package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// The bundle the seeds are made of, and the key id it is signed under.
const (
	fuzzRego = `package mcpauthz.authz

default decision := {"allowed": false, "http_status": 403}

decision := {"allowed": true} if input.role in data.roles.allowed
`
	fuzzData     = `{"roles": {"allowed": ["admin", "member"]}}`
	fuzzManifest = `{"revision": "2026-11-25.1", "roots": ["mcpauthz", "roles"]}`
	fuzzKeyID    = "bundle-signer"
)

// fuzzKey is a fixed P-256 key, so that the signatures in the checked-in
// corpus keep verifying. It signs nothing outside these tests.
func fuzzKey(tb testing.TB) (priv, pub []byte) {
	tb.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
}

// fuzzFiles are a bundle's files; an empty one is left out of the archive.
type fuzzFiles struct {
	manifest, signatures, module, data string
}

// tar archives the files.
func (ff fuzzFiles) tar() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{
		{"/.manifest", ff.manifest}, {"/.signatures.json", ff.signatures},
		{"/mcpauthz/authz/policy.rego", ff.module}, {"/data.json", ff.data},
	} {
		if f.body == "" {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	return buf.Bytes()
}

// tarball is the files as a bundle server sends them: a gzipped tar.
func (ff fuzzFiles) tarball() []byte { return gzipped(ff.tar()) }

func gzipped(data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

// declaredSizes returns the largest size a regular file's header in the tar
// stream declares, and their sum, as far as the stream reads. (A sparse
// entry declares a size its few bytes expand to.)
func declaredSizes(data []byte) (largest, total int64) {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			return largest, total
		}
		if h.Typeflag == tar.TypeReg {
			largest = max(largest, h.Size)
			total += min(h.Size, MaxBundleBytes+1)
		}
	}
}

// sign returns ff with the signatures file of its other files, signed
// with the fuzz key under keyID.
func (ff fuzzFiles) sign(tb testing.TB, keyID string) fuzzFiles {
	tb.Helper()
	ff.signatures = ""
	b, err := readTarball(ff.tarball(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	priv, _ := fuzzKey(tb)
	if err := Sign(b, priv, keyID, ES256); err != nil {
		tb.Fatal(err)
	}
	sigs, err := json.Marshal(b.Signatures)
	if err != nil {
		tb.Fatal(err)
	}
	ff.signatures = string(sigs)
	return ff
}

func readTarball(data []byte, v *Verification) (*bundle.Bundle, error) {
	var opts []LoadOption
	if v != nil {
		opts = append(opts, WithVerification(v))
	}
	return read(tarball(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }), opts)
}

// checkBundle asserts what the engine and the status rely on of a bundle
// that reads: roots that do not overlap and hold every module and data
// document, files within the size limit, and a revision that is the
// manifest's if it has one, stable, and valid UTF-8 (it becomes a metric
// label and a log field).
func checkBundle(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	if b.Manifest.Roots == nil {
		t.Fatal("no roots")
	}
	roots := *b.Manifest.Roots
	for i := range roots {
		for j := i + 1; j < len(roots); j++ {
			if bundle.RootPathsOverlap(roots[i], roots[j]) {
				t.Fatalf("roots %q and %q overlap", roots[i], roots[j])
			}
		}
	}
	for _, m := range b.Modules {
		if len(m.Raw) > MaxBundleBytes {
			t.Fatalf("module %s has %d bytes", m.Path, len(m.Raw))
		}
		var segs []string
		for _, term := range m.Parsed.Package.Path[1:] {
			s, ok := term.Value.(ast.String)
			if !ok {
				t.Fatalf("package %v", m.Parsed.Package)
			}
			segs = append(segs, string(s))
		}
		if !slices.ContainsFunc(roots, func(root string) bool {
			// A root holds a path that starts with its segments; "" holds all.
			rs := strings.Split(root, "/")
			return root == "" || len(rs) <= len(segs) && slices.Equal(rs, segs[:len(rs)])
		}) {
			t.Fatalf("roots %q do not hold package %v", roots, m.Parsed.Package)
		}
	}
	// The reader refuses a data key that is empty or holds "/" on the way
	// to a root, so joining the keys with "/" names the path.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		if bundle.RootPathsContain(roots, path) {
			return
		}
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("roots %q do not hold data at %q", roots, path)
		}
		for k, child := range obj {
			walk(strings.TrimPrefix(path+"/"+k, "/"), child)
		}
	}
	for k, v := range b.Data {
		walk(k, v)
	}
	rev := Revision(b)
	switch {
	case rev == "" || !utf8.ValidString(rev):
		t.Fatalf("revision %q", rev)
	case b.Manifest.Revision != "" && rev != b.Manifest.Revision:
		t.Fatalf("revision %q, manifest %q", rev, b.Manifest.Revision)
	case Revision(b) != rev:
		t.Fatal("revision not stable")
	}
}

// checkVerified asserts that a bundle that verifies reads the same
// without verification, and carries one signature naming the key id.
func checkVerified(t *testing.T, verified *bundle.Bundle, plain *bundle.Bundle) {
	t.Helper()
	if Revision(verified) != Revision(plain) || len(verified.Modules) != len(plain.Modules) ||
		!reflect.DeepEqual(verified.Data, plain.Data) {
		t.Fatal("a verified bundle reads otherwise unverified")
	}
	sigs, err := json.Marshal(verified.Signatures)
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseSignatures(sigs)
	if err != nil || info.KeyID != fuzzKeyID || info.Algorithm != ES256 {
		t.Fatalf("verified with signatures %+v, %v", info, err)
	}
}

// FuzzReadBundle feeds arbitrary tar streams, gzipped, to the bundle
// reader, with and without a verification key, as Remote reads a download.
// (Mutating the tar rather than its compressed form reaches the headers.)
// No panic; a bundle that reads obeys checkBundle; with the key, a bundle
// that reads without it either verifies — and then reads the same and
// names the key — or fails with ErrSignature, and one that does not read
// fails either way. A file declared larger than MaxBundleBytes is refused
// before anything is allocated for it; one declared between 1 MiB and
// that is skipped, and so are files that declare more than 4 MiB together,
// to keep each execution small.
func FuzzReadBundle(f *testing.F) {
	_, pub := fuzzKey(f)
	v, err := NewVerification(pub, fuzzKeyID, "")
	if err != nil {
		f.Fatal(err)
	}
	plain := fuzzFiles{manifest: fuzzManifest, module: fuzzRego, data: fuzzData}
	for _, ff := range []fuzzFiles{
		plain,
		plain.sign(f, fuzzKeyID),
		plain.sign(f, "another-key"),
		{module: fuzzRego},
		{manifest: `{"roots": [""]}`, data: `{"a": {"b": 1}}`},
		{manifest: `{"revision": "\u00e9\ud800", "roots": ["roles"]}`, data: fuzzData},
	} {
		f.Add(ff.tar())
	}
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		size, total := declaredSizes(data)
		if size > 1<<20 && size <= MaxBundleBytes || size <= MaxBundleBytes && total > 4<<20 {
			t.Skip()
		}
		tgz := gzipped(data)
		b, err := readTarball(tgz, nil)
		vb, verr := readTarball(tgz, v)
		if err != nil {
			if verr == nil {
				t.Fatalf("verified a bundle that does not read: %v", err)
			}
			return
		}
		if size > MaxBundleBytes {
			t.Fatalf("read a file of %d bytes", size)
		}
		checkBundle(t, b)
		if verr != nil {
			if !errors.Is(verr, ErrSignature) {
				t.Fatalf("a bundle that reads failed verification for another reason: %v", verr)
			}
			return
		}
		checkVerified(t, vb, b)
	})
}

// FuzzBundleFiles feeds arbitrary manifests, signatures files, modules and
// data documents, archived as a bundle server would send them. The
// properties of FuzzReadBundle hold; a bundle verifies only if its module,
// data and manifest are those the fuzz key signed (the data and manifest
// as JSON values); and parseSignatures, which reads the signatures file
// for display, never panics, reports what OPA's verifier reads
// (checkSignaturesFile), and accepts every signatures file that verifies.
func FuzzBundleFiles(f *testing.F) {
	_, pub := fuzzKey(f)
	v, err := NewVerification(pub, fuzzKeyID, "")
	if err != nil {
		f.Fatal(err)
	}
	signed := fuzzFiles{manifest: fuzzManifest, module: fuzzRego, data: fuzzData}.sign(f, fuzzKeyID)
	signedBundle, err := readTarball(signed.tarball(), v)
	if err != nil {
		f.Fatalf("the signed seed does not verify: %v", err)
	}
	add := func(ff fuzzFiles) { f.Add(ff.manifest, ff.signatures, ff.module, ff.data) }
	add(signed)
	add(fuzzFiles{manifest: fuzzManifest, module: fuzzRego, data: fuzzData})
	add(fuzzFiles{manifest: fuzzManifest, module: fuzzRego, data: fuzzData}.sign(f, "another-key"))
	add(fuzzFiles{manifest: `{"revision":"2026-11-25.1","roots":["mcpauthz","roles"]}`, signatures: signed.signatures, module: fuzzRego, data: fuzzData})
	add(fuzzFiles{manifest: fuzzManifest, signatures: signed.signatures, module: fuzzRego + "\n", data: fuzzData})
	add(fuzzFiles{manifest: `{"roots": ["mcpauthz", "mcpauthz/authz"]}`, module: fuzzRego})
	add(fuzzFiles{manifest: `{"roots": ["other"]}`, module: fuzzRego})
	add(fuzzFiles{signatures: `{"signatures": ["e30.e30.AAAA"]}`, module: fuzzRego})
	add(fuzzFiles{signatures: `{"signatures": []}`, module: fuzzRego})
	// Text after the manifest's JSON value, which the reader ignores and
	// the signature's YAML reading of the manifest too.
	add(fuzzFiles{manifest: fuzzManifest + " #x", signatures: signed.signatures, module: fuzzRego, data: fuzzData})
	// A data key holding "/", which OPA takes for a path within a root.
	add(fuzzFiles{manifest: fuzzManifest, module: fuzzRego, data: `{"/roles": {"allowed": ["admin", "member"]}}`})

	f.Fuzz(func(t *testing.T, manifest, signatures, module, data string) {
		checkSignaturesFile(t, signatures)
		ff := fuzzFiles{manifest: manifest, signatures: signatures, module: module, data: data}
		tgz := ff.tarball()
		b, err := readTarball(tgz, nil)
		vb, verr := readTarball(tgz, v)
		if err != nil {
			if verr == nil {
				t.Fatalf("verified a bundle that does not read: %v", err)
			}
			return
		}
		checkBundle(t, b)
		if verr != nil {
			if !errors.Is(verr, ErrSignature) {
				t.Fatalf("a bundle that reads failed verification for another reason: %v", verr)
			}
			return
		}
		checkVerified(t, vb, b)
		// What verifies reads as what was signed: the signature covers the
		// manifest and data as values (trailing text after the JSON value,
		// which the reader ignores, changes neither).
		if module != signed.module || !reflect.DeepEqual(vb.Manifest, signedBundle.Manifest) || !reflect.DeepEqual(vb.Data, signedBundle.Data) {
			t.Fatalf("verified files the key did not sign:\nmanifest %q\nmodule %q\ndata %q", manifest, module, data)
		}
		if info, err := parseSignatures([]byte(signatures)); err != nil || info.KeyID != fuzzKeyID {
			t.Fatalf("parseSignatures of a verified signatures file: %+v, %v", info, err)
		}
	})
}

// checkSignaturesFile compares parseSignatures with what OPA's verifier
// reads: what it accepts holds exactly one compact JWS whose header is a
// JSON object, and it reports the header's kid and alg by their exact
// names, and the scope, file names and (without a kid) keyid of the
// payload as OPA decodes it.
func checkSignaturesFile(t *testing.T, data string) {
	t.Helper()
	info, err := parseSignatures([]byte(data))
	if err != nil {
		return
	}
	var sc bundle.SignaturesConfig
	if err := json.NewDecoder(strings.NewReader(data)).Decode(&sc); err != nil || len(sc.Signatures) != 1 {
		t.Fatalf("accepted %q: %v", data, err)
	}
	parts := strings.Split(sc.Signatures[0], ".")
	if len(parts) != 3 {
		t.Fatalf("accepted %d parts", len(parts))
	}
	var hdr map[string]any
	var payload bundle.DecodedSignature
	for i, v := range []any{&hdr, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("accepted part %d %q", i, parts[i])
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // a header member may be a number no float64 holds
		if dec.Decode(v) != nil || dec.Decode(new(any)) != io.EOF {
			t.Fatalf("accepted part %d %q", i, parts[i])
		}
	}
	if hdr == nil {
		t.Fatalf("accepted the header %q", parts[0])
	}
	kid, _ := hdr["kid"].(string)
	if kid == "" {
		kid = payload.KeyID
	}
	alg, _ := hdr["alg"].(string)
	var files []string
	for _, f := range payload.Files {
		files = append(files, f.Name)
	}
	if info.KeyID != kid || info.Algorithm != alg || info.Scope != payload.Scope || !slices.Equal(info.Files, files) {
		t.Fatalf("parseSignatures(%q) = %+v; want kid %q, alg %q, scope %q, files %q", data, info, kid, alg, payload.Scope, files)
	}
}
