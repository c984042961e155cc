package bundles_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// writeFiles writes files (slash-separated names) below dir.
func writeFiles(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// writeTarball writes files as a bundle archive the way `opa build` does,
// with OPA's bundle writer, and returns its path.
func writeTarball(tb testing.TB, path string, files map[string]string) {
	tb.Helper()
	b := loadFS(tb, files)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := bundle.NewWriter(f).Write(*b); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

var policyFiles = map[string]string{
	"authz/authz.rego": roleRego,
	"data.json":        roleData,
}

// hiddenJunk are files editors and git leave in a bundle directory. Each of
// them breaks the bundle if it is read: invalid Rego, invalid JSON, or a
// second definition of the decision.
var hiddenJunk = map[string]string{
	".authz.rego.swp":         "b0VIM 9.0\x00\x00garbage",
	"authz/.#authz.rego":      "this is not rego {",
	".git/HEAD":               "ref: refs/heads/main\n",
	".git/hooks/check.rego":   "package mcpauthz.authz\n\ndecision := true\n",
	".git/info/data.json":     "{not json",
	".cache/authz/stale.rego": "package mcpauthz.authz\n\ndecision := false\n",
}

func TestLoadPath(t *testing.T) {
	withManifest := map[string]string{".manifest": `{"revision": "v42", "roots": ["mcpauthz", "roles"]}`}
	for k, v := range policyFiles {
		withManifest[k] = v
	}
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string) string // returns the path to load
		revision string                                // "" for the content digest
	}{
		{"ok/directory with manifest and hidden files", func(t *testing.T, dir string) string {
			writeFiles(t, dir, withManifest)
			writeFiles(t, dir, hiddenJunk)
			return dir
		}, "v42"},
		{"ok/directory without manifest", func(t *testing.T, dir string) string {
			writeFiles(t, dir, policyFiles)
			return dir
		}, ""},
		{"ok/directory given with a trailing slash", func(t *testing.T, dir string) string {
			writeFiles(t, dir, withManifest)
			writeFiles(t, dir, hiddenJunk)
			return dir + string(filepath.Separator)
		}, "v42"},
		// Kubernetes mounts a ConfigMap as symlinks into a hidden,
		// timestamped directory (see configMap in watch_test.go).
		{"ok/kubernetes ConfigMap mount", func(t *testing.T, dir string) string {
			// ConfigMap keys are flat file names; ".manifest" is a valid key.
			newConfigMap(t, dir, map[string]string{
				".manifest": `{"revision": "v42"}`, "authz.rego": roleRego, "data.json": roleData,
			})
			return dir
		}, "v42"},
		{"ok/tar.gz built by opa's bundle writer", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "bundle.tar.gz")
			writeTarball(t, p, withManifest)
			return p
		}, "v42"},
		{"ok/tar.gz without manifest", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "bundle.tar.gz")
			writeTarball(t, p, policyFiles)
			return p
		}, ""},
	}
	digest := bundles.Revision(loadFS(t, policyFiles))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t, t.TempDir())
			b, err := bundles.LoadPath(path)
			if err != nil {
				t.Fatalf("LoadPath: %v", err)
			}
			want := tt.revision
			if want == "" {
				// The digest names the content wherever it was read from.
				want = digest
			}
			if got := bundles.Revision(b); got != want {
				t.Errorf("Revision = %q, want %q", got, want)
			}
			e := newEngine(t)
			if err := e.Activate(context.Background(), b, path); err != nil {
				t.Fatalf("Activate: %v", err)
			}
			if got := decide(t, e, map[string]any{"role": "member"}); got != `{"allowed": true}` {
				t.Errorf("decision for member = %s", got)
			}
			if got := decide(t, e, map[string]any{"role": "guest"}); got != `{"allowed": false, "http_status": 403}` {
				t.Errorf("decision for guest = %s", got)
			}
		})
	}
}

func TestLoadPathFails(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string
	}{
		{"fail/missing path", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope") }},
		{"fail/rego syntax error", func(t *testing.T, dir string) string {
			writeFiles(t, dir, map[string]string{"authz.rego": "package mcpauthz.authz\n\ndecision := {\n"})
			return dir
		}},
		{"fail/invalid data.json", func(t *testing.T, dir string) string {
			writeFiles(t, dir, map[string]string{"authz.rego": roleRego, "data.json": "{"})
			return dir
		}},
		{"fail/a revision longer than the bound", func(t *testing.T, dir string) string {
			writeFiles(t, dir, map[string]string{"authz.rego": roleRego,
				".manifest": `{"revision": "` + strings.Repeat("r", bundles.MaxRevisionBytes+1) + `"}`})
			return dir
		}},
		{"fail/a data key with a slash, outside the roots OPA takes it for", func(t *testing.T, dir string) string {
			writeFiles(t, dir, map[string]string{"authz.rego": roleRego, ".manifest": `{"roots": ["mcpauthz", "roles"]}`,
				"data.json": `{"/roles": {"allowed": ["admin"]}}`})
			return dir
		}},
		{"fail/an empty data key on the way to a root", func(t *testing.T, dir string) string {
			writeFiles(t, dir, map[string]string{"authz.rego": roleRego, ".manifest": `{"roots": ["mcpauthz", "roles"]}`,
				"data.json": `{"": {"roles": {"allowed": ["admin"]}}}`})
			return dir
		}},
		{"fail/file is not a tarball", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "bundle.tar.gz")
			writeFiles(t, dir, map[string]string{"bundle.tar.gz": roleRego})
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := bundles.LoadPath(tt.setup(t, t.TempDir())); err == nil {
				t.Fatalf("LoadPath = %d modules, want an error", len(b.Modules))
			}
		})
	}
}

// TestLoadPathRevisionAtTheBound: a revision of MaxRevisionBytes loads;
// one byte more does not (TestLoadPathFails).
func TestLoadPathRevisionAtTheBound(t *testing.T) {
	dir := t.TempDir()
	rev := strings.Repeat("r", bundles.MaxRevisionBytes)
	writeFiles(t, dir, map[string]string{"authz.rego": roleRego, ".manifest": `{"revision": "` + rev + `"}`})
	b, err := bundles.LoadPath(dir)
	if err != nil || bundles.Revision(b) != rev {
		t.Fatalf("LoadPath: %v", err)
	}
}

// TestLoadPathDataKeysWithinRoots: below a root, data keys may hold "/" and
// be empty (the default bundle's MCP methods are keyed "tools/call").
func TestLoadPathDataKeysWithinRoots(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"authz.rego": roleRego, ".manifest": `{"roots": ["mcpauthz", "roles"]}`,
		"data.json": `{"roles": {"allowed": ["admin"]}, "mcpauthz": {"methods": {"tools/call": 1, "": 2}}}`})
	b, err := bundles.LoadPath(dir)
	if err != nil {
		t.Fatalf("LoadPath: %v", err)
	}
	if got := b.Data["mcpauthz"].(map[string]any)["methods"].(map[string]any)["tools/call"]; got == nil {
		t.Fatalf("data %v", b.Data)
	}
}
