package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// Bundle variants the server can send.
const (
	bundleGood     = "good"     // the default policy, signed
	bundleCorrupt  = "corrupt"  // the signed archive with bytes damaged
	bundleUnsigned = "unsigned" // an allow-everything policy without a signature
	bundleGood2    = "good-2"   // the default policy again, signed, a new revision
	bundleGood3    = "good-3"   // and again, after the load: it releases the decision cache
)

// Revisions of the bundles the server sends.
const (
	revGood     = "soak-1"
	revGood2    = "soak-2"
	revGood3    = "soak-3"
	revUnsigned = "soak-unsigned-allow-all"
)

// signingKeyID names the bundle signing key; the sidecar is configured
// with it and the public key.
const signingKeyID = "soak-bundles"

// allowAll is a policy no sidecar verifying signatures may ever run.
const allowAll = `package mcpauthz.authz

decision := {"allowed": true, "reason": "unsigned"}
`

// bundleServer serves one bundle at a time at /bundles/mcpauthz.tar.gz,
// with an ETag, as a bundle server behind a CDN does.
type bundleServer struct {
	url     string // of the bundle
	pubFile string // the verification key (PEM)
	srv     *http.Server

	mu      sync.Mutex
	current string
	bodies  map[string][]byte
	served  map[string]int // 200 answers by variant
}

// newBundleServer builds the variants from the default policy in
// policyDir, signed with a fresh P-256 key, and serves the good one.
func newBundleServer(policyDir, work string) (*bundleServer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	s := &bundleServer{
		pubFile: filepath.Join(work, "bundle-signing.pub.pem"),
		bodies:  map[string][]byte{},
		served:  map[string]int{},
		current: bundleGood,
	}
	if err := os.WriteFile(s.pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, err
	}
	signed := func(dir, revision string) ([]byte, error) {
		b, err := bundles.Build(dir, bundles.BuildOptions{Revision: revision})
		if err != nil {
			return nil, err
		}
		if err := bundles.Sign(b, privPEM, signingKeyID, bundles.ES256); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		err = bundles.Write(&buf, b)
		return buf.Bytes(), err
	}
	if s.bodies[bundleGood], err = signed(policyDir, revGood); err != nil {
		return nil, fmt.Errorf("building the default bundle: %w", err)
	}
	if s.bodies[bundleGood2], err = signed(policyDir, revGood2); err != nil {
		return nil, err
	}
	if s.bodies[bundleGood3], err = signed(policyDir, revGood3); err != nil {
		return nil, err
	}
	corrupt := bytes.Clone(s.bodies[bundleGood])
	for i := len(corrupt) / 3; i < len(corrupt)/3+64 && i < len(corrupt); i++ {
		corrupt[i] ^= 0x5a
	}
	s.bodies[bundleCorrupt] = corrupt

	dir := filepath.Join(work, "unsigned-policy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(allowAll), 0o644); err != nil {
		return nil, err
	}
	b, err := bundles.Build(dir, bundles.BuildOptions{Revision: revUnsigned})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := bundles.Write(&buf, b); err != nil {
		return nil, err
	}
	s.bodies[bundleUnsigned] = buf.Bytes()
	return s, nil
}

// start listens on a free loopback port.
func (s *bundleServer) start() error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.url = "http://" + lis.Addr().String() + "/bundles/mcpauthz.tar.gz"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bundles/mcpauthz.tar.gz", s.serve)
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(lis)
	return nil
}

func (s *bundleServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	variant := s.current
	body := s.bodies[variant]
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	notModified := r.Header.Get("If-None-Match") == etag
	if !notModified {
		s.served[variant]++
	}
	s.mu.Unlock()
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/gzip")
	w.Write(body)
}

// use switches the bundle served.
func (s *bundleServer) use(variant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = variant
}

// servedCount is how many times a variant was sent whole.
func (s *bundleServer) servedCount(variant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[variant]
}

func (s *bundleServer) close() {
	if s.srv != nil {
		s.srv.Close()
	}
}
