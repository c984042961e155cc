package bundles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
)

// MaxBundleBytes caps the size of any one file in a bundle.
const MaxBundleBytes = bundle.DefaultSizeLimitBytes

// LoadFS reads a bundle laid out as a directory tree in fsys (the embedded
// default bundle, or a directory).
func LoadFS(fsys fs.FS) (*bundle.Bundle, error) {
	loader, err := bundle.NewFSLoader(fsys)
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %w", err)
	}
	return read(loader)
}

// LoadPath reads a bundle from a directory or from a .tar.gz file built by
// `opa build`.
func LoadPath(path string) (*bundle.Bundle, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %w", err)
	}
	if info.IsDir() {
		// Kubernetes mounts ConfigMaps as symlinks through "..data"; the
		// root itself may be a symlink too.
		root, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, fmt.Errorf("reading bundle: %w", err)
		}
		b, err := read(bundle.NewDirectoryLoader(root).WithFollowSymlinks(true).WithFilter(skipHidden(root)))
		if err != nil {
			return nil, fmt.Errorf("bundle directory %s: %w", path, err)
		}
		return b, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %w", err)
	}
	defer f.Close()
	b, err := read(bundle.NewTarballLoader(f))
	if err != nil {
		return nil, fmt.Errorf("bundle file %s: %w", path, err)
	}
	return b, nil
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

func read(loader bundle.DirectoryLoader) (*bundle.Bundle, error) {
	b, err := bundle.NewCustomReader(loader).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(MaxBundleBytes).
		// Signature verification is configured separately; unsigned
		// bundles are accepted unless a verification key is set.
		WithSkipBundleVerification(true).
		Read()
	if err != nil {
		return nil, err
	}
	return &b, nil
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
