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

// Watcher reloads a bundle directory or bundle file when it changes. A
// change that does not load or compile is logged and leaves the active
// policy in place; the next change is tried again.
type Watcher struct {
	engine   *Engine
	path     string
	debounce time.Duration
	log      *slog.Logger
}

// NewWatcher returns a watcher that reloads path into engine.
func NewWatcher(engine *Engine, path string, debounce time.Duration, log *slog.Logger) *Watcher {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	return &Watcher{engine: engine, path: filepath.Clean(path), debounce: debounce, log: log}
}

// Reload loads the bundle at the watched path and activates it.
func (w *Watcher) Reload(ctx context.Context) error {
	return w.engine.Load(ctx, w.path, func() (*bundle.Bundle, error) { return LoadPath(w.path) })
}

// Run watches until ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.path, err)
	}
	defer fw.Close()

	info, err := os.Stat(w.path)
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.path, err)
	}
	dir := info.IsDir()
	if dir {
		err = w.addTree(fw, w.path)
	} else {
		// Watch the parent: tools replace bundle files by renaming over
		// them, which ends a watch on the file itself.
		err = fw.Add(filepath.Dir(w.path))
	}
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.path, err)
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("bundle watcher closed")
			}
			if !w.relevant(ev, dir) {
				continue
			}
			if dir && ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := w.addTree(fw, ev.Name); err != nil {
						w.log.Warn("watching a new bundle directory", slog.String("path", ev.Name), slog.Any("error", err))
					}
				}
			}
			timer.Reset(w.debounce)
		case err, ok := <-fw.Errors:
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

func (w *Watcher) relevant(ev fsnotify.Event, dir bool) bool {
	name := filepath.Clean(ev.Name)
	if !dir {
		return name == w.path
	}
	return !hidden(strings.TrimPrefix(name, w.path))
}

func hidden(rel string) bool {
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if strings.HasPrefix(part, ".") && part != ".manifest" {
			return true
		}
	}
	return false
}

func (w *Watcher) addTree(fw *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != w.path && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return fw.Add(p)
	})
}
