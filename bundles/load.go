package bundles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
)

// MaxBundleBytes caps the size of any one file in a bundle.
const MaxBundleBytes = bundle.DefaultSizeLimitBytes

// MaxUnpackedBytes caps the files of a bundle archive together, as they
// are unpacked: OPA's loader holds every file in memory before any
// signature is checked, so a small archive of highly compressed files
// could otherwise take gigabytes.
const MaxUnpackedBytes = 256 << 20

// MaxRevisionBytes caps a manifest's revision, which every decision log
// line, trace and the bundle metric's label carry.
const MaxRevisionBytes = 256

// LoadOption configures how a bundle is read.
type LoadOption func(*loadConfig)

type loadConfig struct {
	verify *Verification
}

// WithVerification makes a load verify the bundle's signature: a bundle
// that is unsigned, altered after signing, signed with another key, or
// whose signature names no or another key id fails with ErrSignature. A nil
// Verification changes nothing.
func WithVerification(v *Verification) LoadOption {
	return func(c *loadConfig) { c.verify = v }
}

// LoadFS reads a bundle laid out as a directory tree in fsys (the embedded
// default bundle, or a directory).
func LoadFS(fsys fs.FS, opts ...LoadOption) (*bundle.Bundle, error) {
	b, err := read(func() (bundle.DirectoryLoader, func() error, error) {
		loader, err := bundle.NewFSLoader(fsys)
		return loader, noRelease, err
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %w", err)
	}
	return b, nil
}

// LoadPath reads a bundle from a directory or from a .tar.gz file built by
// `opa build` or Write.
func LoadPath(path string, opts ...LoadOption) (*bundle.Bundle, error) {
	open, dir, err := openPath(path)
	if err != nil {
		return nil, err
	}
	b, err := read(open, opts)
	if err != nil {
		if dir {
			return nil, fmt.Errorf("bundle directory %s: %w", path, err)
		}
		return nil, fmt.Errorf("bundle file %s: %w", path, err)
	}
	return b, nil
}

// opener returns a fresh loader over the bundle's files and a function
// releasing it, which reports whether the files were within bounds.
type opener func() (bundle.DirectoryLoader, func() error, error)

// openPath returns an opener for the bundle at path, and whether it is a
// directory.
func openPath(path string) (opener, bool, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("reading bundle: %w", err)
	}
	if info.IsDir() {
		// Kubernetes mounts ConfigMaps as symlinks through "..data"; the
		// root itself may be a symlink too.
		root, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, false, fmt.Errorf("reading bundle: %w", err)
		}
		return func() (bundle.DirectoryLoader, func() error, error) {
			return bundle.NewDirectoryLoader(root).WithFollowSymlinks(true).WithFilter(skipHidden(root)), noRelease, nil
		}, true, nil
	}
	return tarball(func() (io.ReadCloser, error) { return os.Open(path) }), false, nil
}

// tarball returns an opener reading a .tar.gz from what open returns: a
// bundle file, or a download held in memory (Remote).
func tarball(open func() (io.ReadCloser, error)) opener {
	return func() (bundle.DirectoryLoader, func() error, error) {
		r, err := open()
		if err != nil {
			return nil, nil, err
		}
		// The loader buffers each file whole, allocating the size its tar
		// header declares before the reader checks any size: without
		// this limit, a header declaring more than can be allocated
		// panics. The budget skips, unread, every file past
		// MaxUnpackedBytes and fails the read.
		budget := &unpackBudget{left: MaxUnpackedBytes}
		loader := bundle.NewTarballLoader(r).WithSizeLimitBytes(MaxBundleBytes).WithFilter(budget.take)
		return loader, func() error { r.Close(); return budget.err }, nil
	}
}

// unpackBudget is a loader filter counting the sizes tar headers declare,
// which bound what the loader reads of each file.
type unpackBudget struct {
	left int64
	err  error
}

func (b *unpackBudget) take(name string, info fs.FileInfo, _ int) bool {
	if b.err != nil {
		return true
	}
	if !info.Mode().IsRegular() {
		return false
	}
	if b.left -= info.Size(); b.left < 0 {
		b.err = fmt.Errorf("the archive unpacks to more than %d MiB (at %s)", MaxUnpackedBytes>>20, name)
		return true
	}
	return false
}

func noRelease() error { return nil }

// withoutModules is a loader that leaves out the Rego files.
type withoutModules struct{ bundle.DirectoryLoader }

func (l withoutModules) NextFile() (*bundle.Descriptor, error) {
	for {
		f, err := l.DirectoryLoader.NextFile()
		if err != nil || !strings.HasSuffix(f.Path(), bundle.RegoExt) {
			return f, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
}

// skipHidden leaves out dot-files and dot-directories below root other than
// the manifest and signatures (editor swap files, .git) when a directory is
// read as a bundle.
func skipHidden(root string) filter.LoaderFilter {
	root = filepath.ToSlash(filepath.Clean(root))
	return func(abspath string, info fs.FileInfo, _ int) bool {
		if filepath.ToSlash(filepath.Clean(abspath)) == root {
			return false
		}
		name := info.Name()
		return strings.HasPrefix(name, ".") && name != ".manifest" && name != ".signatures.json"
	}
}

func read(open opener, opts []LoadOption) (*bundle.Bundle, error) {
	var cfg loadConfig
	for _, o := range opts {
		o(&cfg)
	}
	b, err := readWith(open, cfg.verify, false)
	var parse ast.Errors
	if err == nil || cfg.verify == nil || errors.As(err, &parse) {
		// OPA parses the modules once the signature verified.
		return b, err
	}
	// Tell a signature failure from a bundle that does not read at all:
	// read it again, ignoring signatures. Its modules are left unparsed:
	// OPA parses them on every CPU, and a bundle that may be unverified is
	// not worth taking the CPU from the decisions.
	if _, err2 := readWith(open, nil, true); err2 != nil {
		return nil, err2
	}
	return nil, fmt.Errorf("%w: %w", ErrSignature, err)
}

func readWith(open opener, verify *Verification, skipModules bool) (*bundle.Bundle, error) {
	loader, release, err := open()
	if err != nil {
		return nil, err
	}
	if skipModules {
		loader = withoutModules{loader}
	}
	r := bundle.NewCustomReader(loader).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(MaxBundleBytes)
	if verify != nil {
		r = r.WithBundleVerificationConfig(verify.cfg)
	} else {
		// Without a verification key any signature is ignored and
		// unsigned bundles are accepted.
		r = r.WithSkipBundleVerification(true)
	}
	b, err := r.Read()
	if err := release(); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if len(b.Manifest.Revision) > MaxRevisionBytes {
		return nil, fmt.Errorf("the manifest's revision is longer than %d bytes", MaxRevisionBytes)
	}
	if err := checkDataPaths(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

// checkDataPaths refuses data whose path to the manifest's roots goes
// through an empty key or one holding "/". OPA checks a document's path
// with its keys joined by "/" and trimmed, so it takes {"/roles": …} as
// lying within the root "roles" while storing it outside every root.
func checkDataPaths(b *bundle.Bundle) error {
	roots := []string{""}
	if b.Manifest.Roots != nil {
		roots = *b.Manifest.Roots
	}
	var walk func(path []string, v any) error
	walk = func(path []string, v any) error {
		if bundle.RootPathsContain(roots, strings.Join(path, "/")) {
			return nil
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("the manifest's roots do not hold the data at %q", strings.Join(path, "/"))
		}
		for k, child := range obj {
			if k == "" || strings.Contains(k, "/") {
				return fmt.Errorf("data key %q under %q: a key on the way to the manifest's roots must be non-empty and hold no \"/\"", k, strings.Join(path, "/"))
			}
			if err := walk(append(slices.Clip(path), k), child); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(nil, b.Data)
}

// Revision returns the bundle's manifest revision or, for bundles without
// one, "sha256:" and a digest of its modules and data, so every decision can
// name the policy it was made with.
func Revision(b *bundle.Bundle) string {
	if b.Manifest.Revision != "" {
		return b.Manifest.Revision
	}
	h := sha256.New()
	paths := make([]int, len(b.Modules))
	for i := range paths {
		paths[i] = i
	}
	sort.Slice(paths, func(i, j int) bool { return b.Modules[paths[i]].Path < b.Modules[paths[j]].Path })
	for _, i := range paths {
		m := b.Modules[i]
		fmt.Fprintf(h, "%s\x00%d\x00", m.Path, len(m.Raw))
		h.Write(m.Raw)
	}
	data, _ := json.Marshal(b.Data) // maps marshal with sorted keys
	h.Write(data)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}
