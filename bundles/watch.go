package bundles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// DefaultDebounce is how long a watcher waits for writes to settle before
// it reloads: editors and `opa build` write several files in a burst.
const DefaultDebounce = 250 * time.Millisecond

// configMapData is the symlink Kubernetes swaps to update a mounted
// ConfigMap or Secret: the files themselves are symlinks through it.
const configMapData = "..data"

// Watcher reloads a bundle directory or bundle file when it changes. A
// change that does not load or compile is logged and leaves the active
// policy in place; the next change is tried again.
type Watcher struct {
	engine   *Engine
	path     string
	dir      bool
	debounce time.Duration
	log      *slog.Logger
	fw       *fsnotify.Watcher
	load     []LoadOption
}

// NewWatcher starts watching path for engine: the watches are in place when
// it returns, so a change made after it returns (and after the first load)
// is never missed. It starts no goroutine; Run handles the changes, and
// Close releases the watches if Run is never called. Every reload reads the
// bundle with opts (WithVerification: a bundle whose signature fails is
// rejected like one that does not compile).
func NewWatcher(engine *Engine, path string, debounce time.Duration, log *slog.Logger, opts ...LoadOption) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	w := &Watcher{engine: engine, path: filepath.Clean(path), debounce: debounce, log: log, load: opts}
	info, err := os.Stat(w.path)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", w.path, err)
	}
	w.dir = info.IsDir()
	if w.fw, err = fsnotify.NewWatcher(); err != nil {
		return nil, fmt.Errorf("watching %s: %w", w.path, err)
	}
	if w.dir {
		err = w.addTree(w.path)
	} else {
		// Watch the parent: tools replace bundle files by renaming over
		// them, which ends a watch on the file itself.
		err = w.fw.Add(filepath.Dir(w.path))
	}
	if err != nil {
		w.fw.Close()
		return nil, fmt.Errorf("watching %s: %w", w.path, err)
	}
	return w, nil
}

// Close releases the watches.
func (w *Watcher) Close() error { return w.fw.Close() }

// Reload loads the bundle at the watched path and activates it.
func (w *Watcher) Reload(ctx context.Context) error {
	return w.engine.Load(ctx, w.path, func() (*bundle.Bundle, error) { return LoadPath(w.path, w.load...) })
}

// Run handles changes until ctx is done, then closes the watches.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.fw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fw.Events:
			if !ok {
				return errors.New("bundle watcher closed")
			}
			if !w.relevant(ev) {
				continue
			}
			if w.dir && ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !hidden(filepath.Base(ev.Name)) {
					if err := w.addTree(ev.Name); err != nil {
						w.log.Warn("watching a new bundle directory", slog.String("path", ev.Name), slog.Any("error", err))
					}
				}
			}
			timer.Reset(w.debounce)
		case err, ok := <-w.fw.Errors:
			if !ok {
				return errors.New("bundle watcher closed")
			}
			w.log.Warn("bundle watcher", slog.Any("error", err))
		case <-timer.C:
			if err := w.Reload(ctx); err != nil {
				w.log.Error("policy bundle rejected; the active policy stays in force",
					slog.String("path", w.path), slog.Any("error", err))
			}
		}
	}
}

// relevant reports whether an event can change the bundle: a file of the
// bundle that is not hidden, or a Kubernetes ..data swap next to it.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if filepath.Base(name) == configMapData {
		parent := filepath.Dir(name)
		return parent == w.path || parent == filepath.Dir(w.path)
	}
	if !w.dir {
		return name == w.path
	}
	rel, err := filepath.Rel(w.path, name)
	if err != nil || strings.HasPrefix(rel, "..") {
		return false
	}
	for part := range strings.SplitSeq(filepath.ToSlash(rel), "/") {
		if hidden(part) {
			return false
		}
	}
	return true
}

func hidden(name string) bool {
	return strings.HasPrefix(name, ".") && name != "." && name != ".manifest" && name != ".signatures.json"
}

func (w *Watcher) addTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != w.path && hidden(d.Name()) {
			return filepath.SkipDir
		}
		return w.fw.Add(p)
	})
}
