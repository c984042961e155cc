package bundles_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
)

const watchDebounce = 20 * time.Millisecond

// startWatcher loads path into a new engine and watches it until the test
// ends.
func startWatcher(t *testing.T, path string) *bundles.Engine {
	t.Helper()
	e := newEngine(t)
	w, err := bundles.NewWatcher(e, path, watchDebounce, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.Reload(ctx); err != nil {
		t.Fatalf("initial Reload: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return e
}

// eventually applies change (again, in case an event is coalesced away)
// until cond holds, for at most 5 seconds.
func eventually(t *testing.T, what string, change func(), cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		change()
		for retry := time.Now().Add(300 * time.Millisecond); time.Now().Before(retry); {
			if cond() {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWatcherDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, policyFiles)
	e := startWatcher(t, dir)
	first := e.Status()
	if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": false, "http_status": 403}` {
		t.Fatalf("initial decision for viewer = %s", got)
	}

	// An edited rule becomes active.
	viewerRego := roleRego + "\ndecision := {\"allowed\": true, \"read_only\": true} if input.role == \"viewer\"\n"
	eventually(t, "the edited policy", func() {
		writeFiles(t, dir, map[string]string{"authz/authz.rego": viewerRego})
	}, func() bool { return e.Status().Revision != first.Revision })
	second := e.Status()
	if second.Failures != 0 || second.Activations < 2 {
		t.Errorf("status after the edit: %+v", second)
	}
	if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": true, "read_only": true}` {
		t.Errorf("decision for viewer after the edit = %s", got)
	}

	// An editor swap file alone does not even trigger a reload.
	writeFiles(t, dir, map[string]string{"authz/.authz.rego.swp": "garbage", ".git/index": "garbage"})
	time.Sleep(10 * watchDebounce)
	if st := e.Status(); st.Activations != second.Activations || st.Failures != 0 {
		t.Errorf("hidden files caused a reload: %+v (was %+v)", st, second)
	}

	// A broken edit is rejected and the edited policy stays.
	eventually(t, "the broken policy to be rejected", func() {
		writeFiles(t, dir, map[string]string{"authz/authz.rego": viewerRego + "\ndecision := {\n"})
	}, func() bool { return e.Status().Failures > 0 })
	third := e.Status()
	if third.Revision != second.Revision || third.LastError == "" {
		t.Errorf("status after the broken edit: %+v (was %+v)", third, second)
	}
	if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": true, "read_only": true}` {
		t.Errorf("decision for viewer after the broken edit = %s", got)
	}

	// A policy that parses but does not compile is rejected too.
	failures := third.Failures
	eventually(t, "the uncompilable policy to be rejected", func() {
		writeFiles(t, dir, map[string]string{"authz/authz.rego": roleRego + "\ndecision := x if input.role == y\n"})
	}, func() bool { return e.Status().Failures > failures })
	if st := e.Status(); st.Revision != second.Revision {
		t.Errorf("revision after the uncompilable edit: %q, want %q", st.Revision, second.Revision)
	}

	// The fix is picked up, in a new subdirectory.
	eventually(t, "the fixed policy", func() {
		writeFiles(t, dir, map[string]string{"authz/authz.rego": roleRego, "authz/viewer/viewer.rego": `package mcpauthz.authz

decision := {"allowed": true, "via": "viewer.rego"} if input.role == "viewer"
`})
	}, func() bool { return e.Status().Revision != second.Revision })
	if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": true, "via": "viewer.rego"}` {
		t.Errorf("decision for viewer after the fix = %s", got)
	}
	if got := decide(t, e, map[string]any{"role": "admin"}); got != `{"allowed": true}` {
		t.Errorf("decision for admin after the fix = %s", got)
	}
}

func TestWatcherTarballReplacedByRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.gz")
	rev := func(r string) map[string]string {
		files := map[string]string{".manifest": `{"revision": "` + r + `"}`}
		for k, v := range policyFiles {
			files[k] = v
		}
		return files
	}
	writeTarball(t, path, rev("build-1"))
	e := startWatcher(t, path)
	if got := e.Status().Revision; got != "build-1" {
		t.Fatalf("initial revision %q", got)
	}

	// Another file in the same directory is not the bundle.
	writeTarball(t, filepath.Join(dir, "other.tar.gz"), rev("other"))

	replace := func(files map[string]string) func() {
		return func() {
			tmp := filepath.Join(dir, ".bundle.tar.gz.tmp")
			writeTarball(t, tmp, files)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "revision build-2", replace(rev("build-2")), func() bool { return e.Status().Revision == "build-2" })

	// A truncated archive is rejected; build-2 stays.
	eventually(t, "the truncated archive to be rejected", func() {
		tmp := filepath.Join(dir, ".bundle.tar.gz.tmp")
		if err := os.WriteFile(tmp, []byte("\x1f\x8b\x08\x00truncated"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}, func() bool { return e.Status().Failures > 0 })
	if st := e.Status(); st.Revision != "build-2" {
		t.Errorf("revision after a bad archive: %q", st.Revision)
	}

	eventually(t, "revision build-3", replace(rev("build-3")), func() bool { return e.Status().Revision == "build-3" })
	if got := decide(t, e, map[string]any{"role": "admin"}); got != `{"allowed": true}` {
		t.Errorf("decision = %s", got)
	}
}

func TestWatcherFailsOnMissingPath(t *testing.T) {
	_, err := bundles.NewWatcher(newEngine(t), filepath.Join(t.TempDir(), "missing"), 0, slog.New(slog.DiscardHandler))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewWatcher on a missing path: %v, want an error wrapping os.ErrNotExist", err)
	}
}

// configMap lays out files the way Kubernetes mounts a ConfigMap: a
// timestamped directory, a "..data" symlink to it, and one symlink per
// file through "..data". update swaps in a new version atomically, as the
// kubelet's AtomicWriter does: new directory, "..data_tmp" symlink renamed
// over "..data", old directory removed.
type configMap struct {
	t       *testing.T
	dir     string
	version int
}

func newConfigMap(t *testing.T, dir string, files map[string]string) *configMap {
	cm := &configMap{t: t, dir: dir}
	current := cm.writeVersion(files)
	if err := os.Symlink(current, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return cm
}

func (cm *configMap) writeVersion(files map[string]string) string {
	cm.version++
	name := "..2025_06_01_12_00_0" + string(rune('0'+cm.version))
	writeFiles(cm.t, filepath.Join(cm.dir, name), files)
	return name
}

func (cm *configMap) update(files map[string]string) {
	old, err := os.Readlink(filepath.Join(cm.dir, "..data"))
	if err != nil {
		cm.t.Fatal(err)
	}
	next := cm.writeVersion(files)
	tmp := filepath.Join(cm.dir, "..data_tmp")
	if err := os.Symlink(next, tmp); err != nil {
		cm.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(cm.dir, "..data")); err != nil {
		cm.t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cm.dir, old)); err != nil {
		cm.t.Fatal(err)
	}
}

// TestWatcherConfigMapUpdate: a policy mounted from a Kubernetes ConfigMap
// is updated by swapping the "..data" symlink; nothing else in the
// directory changes. The watcher must reload it.
func TestWatcherConfigMapUpdate(t *testing.T) {
	v1 := map[string]string{"authz.rego": roleRego, "data.json": roleData}
	v2 := map[string]string{"authz.rego": roleRego, "data.json": `{"roles": {"allowed": ["admin", "member", "viewer"]}}`}
	tarV1 := filepath.Join(t.TempDir(), "v1.tar.gz")
	writeTarball(t, tarV1, v1)
	tarV2 := filepath.Join(t.TempDir(), "v2.tar.gz")
	writeTarball(t, tarV2, v2)
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name       string
		v1, v2     map[string]string
		bundlePath func(dir string) string
	}{
		{"ok/bundle directory", v1, v2, func(dir string) string { return dir }},
		{"ok/bundle file", map[string]string{"bundle.tar.gz": read(tarV1)}, map[string]string{"bundle.tar.gz": read(tarV2)},
			func(dir string) string { return filepath.Join(dir, "bundle.tar.gz") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cm := newConfigMap(t, dir, tt.v1)
			e := startWatcher(t, tt.bundlePath(dir))
			if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": false, "http_status": 403}` {
				t.Fatalf("initial decision for viewer = %s", got)
			}
			first := e.Status()
			// Make sure the watch is in place: a visible change reloads.
			eventually(t, "the watch to be in place", func() {
				if tt.name != "ok/bundle file" {
					writeFiles(t, dir, map[string]string{"probe.txt": "x"})
					return
				}
				// Recreate the bundle file's own symlink.
				link := tt.bundlePath(dir)
				target, err := os.Readlink(link)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(link); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
			}, func() bool { return e.Status().Activations > first.Activations })

			cm.update(tt.v2)
			deadline := time.Now().Add(2 * time.Second)
			for e.Status().Revision == first.Revision && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if st := e.Status(); st.Revision == first.Revision {
				t.Fatalf("the ConfigMap update was not picked up within 2s: %+v", st)
			}
			if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": true}` {
				t.Errorf("decision for viewer after the update = %s", got)
			}
		})
	}
}
