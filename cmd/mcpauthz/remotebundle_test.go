package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// TestSidecarRemoteBundle: with policy.bundle a URL the sidecar starts on
// the bundle the server sends, fails to start without one, and reloads by
// fetching again.
func TestSidecarRemoteBundle(t *testing.T) {
	dir := t.TempDir()
	archive := func(revision string) []byte {
		src := filepath.Join(dir, revision)
		writeTree(t, src, map[string]string{"authz.rego": bundleRego, "data.json": `{"allowed_roles": ["admin"]}`})
		b, err := bundles.Build(src, bundles.BuildOptions{Revision: revision})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := bundles.Write(&buf, b); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	const token = "bundle-tok"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		body     = archive("remote-1")
		etag     = `"1"`
		failing  bool
		requests []http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, r.Header.Clone())
		switch {
		case failing:
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.Header.Get("Authorization") != "Bearer "+token:
			w.WriteHeader(http.StatusUnauthorized)
		case r.Header.Get("If-None-Match") == etag:
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("ETag", etag)
			w.Write(body)
		}
	}))
	defer srv.Close()
	url := srv.URL + "/bundles/authz.tar.gz"

	config := func(f func(*PolicyConfig)) Config {
		cfg := Defaults()
		cfg.GRPC.Addr = "127.0.0.1:0"
		cfg.Admin.Addr = ""
		cfg.HTTP.Addr = ""
		cfg.Policy.Bundle = url
		cfg.Policy.BundleTokenFile = tokenFile
		if f != nil {
			f(&cfg.Policy)
		}
		return cfg
	}
	validate := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok/url with token", config(nil), ""},
		{"ok/url without token", config(func(p *PolicyConfig) { p.BundleTokenFile = "" }), ""},
		{"fail/url without host", config(func(p *PolicyConfig) { p.Bundle = "https:///b.tar.gz?secret=1" }), "policy.bundle: not a valid"},
		{"fail/missing token file", config(func(p *PolicyConfig) { p.BundleTokenFile = filepath.Join(dir, "nope") }), "policy.bundle_token_file"},
		{"fail/token for a file bundle", config(func(p *PolicyConfig) { p.Bundle = tokenFile }), "policy.bundle_token_file: neither policy.bundle nor policy.shadow.bundle"},
		{"fail/poll too often", config(func(p *PolicyConfig) { p.BundlePoll = Duration(time.Millisecond) }), "policy.bundle_poll"},
	}
	for _, tt := range validate {
		t.Run("validate/"+tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if !expectErr(t, err, tt.wantErr) {
				return
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("Validate quotes the URL: %v", err)
			}
		})
	}

	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if _, err := buildSidecar(ctx, config(func(p *PolicyConfig) { p.BundleTokenFile = "" }), nil, log); !errors.Is(err, bundles.ErrBundleServer) {
		t.Fatalf("sidecar without the token: %v, want ErrBundleServer", err)
	}

	s, stop := startSidecar(t, config(nil), io.Discard)
	if st := s.engine.Status(); st.Revision != "remote-1" || st.Source != url {
		t.Fatalf("engine status %+v", st)
	}
	if s.source.watcher != nil {
		t.Fatal("a bundle URL has a file watcher")
	}
	// Run polls at once: the bundle is current.
	for deadline := time.Now().Add(5 * time.Second); s.source.remote.Status().NotModified == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not poll: %+v", s.source.remote.Status())
		}
	}

	// A reload (SIGHUP) fetches now; a failing server keeps the policy.
	mu.Lock()
	failing = true
	mu.Unlock()
	if err := s.source.Load(ctx); !errors.Is(err, bundles.ErrBundleServer) {
		t.Fatalf("reload from a failing server: %v", err)
	}
	mu.Lock()
	failing, body, etag = false, archive("remote-2"), `"2"`
	mu.Unlock()
	if err := s.source.Load(ctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if st := s.engine.Status(); st.Revision != "remote-2" || st.Activations != 2 {
		t.Fatalf("engine status after the reload %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requests) < 4 || requests[len(requests)-1].Get("If-None-Match") != `"1"` {
		t.Fatalf("requests %v", requests)
	}
}
