package bundles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// BuildOptions tune Build.
type BuildOptions struct {
	// Revision goes into the manifest; empty keeps the source's manifest
	// revision or, without one, uses the content digest Revision computes.
	Revision string
	// Roots go into the manifest; empty keeps the source's manifest roots
	// or, without them, uses the package paths and top-level data keys.
	Roots []string
}

// Build reads the bundle directory (or archive) at path, ignoring any
// signature, and gives it a manifest with a revision and roots. Write it
// with Write, after Sign if it is to be signed.
func Build(path string, opts BuildOptions) (*bundle.Bundle, error) {
	b, err := LoadPath(path)
	if err != nil {
		return nil, err
	}
	b.Signatures = bundle.SignaturesConfig{}
	roots := slices.Clone(opts.Roots)
	if len(roots) == 0 && b.Manifest.Roots != nil && !slices.Equal(*b.Manifest.Roots, []string{""}) {
		roots = slices.Clone(*b.Manifest.Roots)
	}
	if len(roots) == 0 {
		roots = derivedRoots(b)
	}
	for i := range roots {
		roots[i] = strings.Trim(roots[i], "/")
	}
	for _, m := range b.Modules {
		if p := packagePath(m.Parsed); !bundle.RootPathsContain(roots, p) {
			return nil, fmt.Errorf("bundle %s: roots %v do not hold package %s of %s", path, roots, m.Parsed.Package.Path, m.Path)
		}
	}
	b.Manifest.Roots = &roots
	if opts.Revision != "" {
		b.Manifest.Revision = opts.Revision
	} else if b.Manifest.Revision == "" {
		b.Manifest.Revision = Revision(b)
	}
	return b, nil
}

// derivedRoots are the shortest paths holding every package and top-level
// data document of b.
func derivedRoots(b *bundle.Bundle) []string {
	var all []string
	for _, m := range b.Modules {
		all = append(all, packagePath(m.Parsed))
	}
	for k := range b.Data {
		all = append(all, k)
	}
	slices.Sort(all)
	var roots []string
	for _, p := range all {
		if !bundle.RootPathsContain(roots, p) {
			roots = append(roots, p)
		}
	}
	return roots
}

// packagePath is a module's package as a slash path ("mcpauthz/authz").
func packagePath(m *ast.Module) string {
	var parts []string
	for _, t := range m.Package.Path[1:] {
		if s, ok := t.Value.(ast.String); ok {
			parts = append(parts, string(s))
		} else {
			parts = append(parts, t.String())
		}
	}
	return strings.Join(parts, "/")
}

// Write writes b as a .tar.gz bundle, modules under their bundle paths and
// byte for byte as read, so a signature made by Sign still holds.
func Write(w io.Writer, b *bundle.Bundle) error {
	return bundle.NewWriter(w).UseModulePath(true).DisableFormat(true).Write(*b)
}

// Info describes a bundle for people: what `mcpauthz bundle inspect` prints.
type Info struct {
	Revision  string
	Roots     []string
	Files     []string       // every file, the signatures file included
	Packages  []string       // Rego packages, sorted
	Signature *SignatureInfo // nil when unsigned; never verified here
}

// Inspect reads the bundle at path without verifying its signature.
func Inspect(path string) (*Info, error) {
	b, err := LoadPath(path)
	if err != nil {
		return nil, err
	}
	info := &Info{Revision: Revision(b)}
	if b.Manifest.Roots != nil {
		info.Roots = slices.Clone(*b.Manifest.Roots)
	}
	seen := map[string]bool{}
	for _, m := range b.Modules {
		if p := m.Parsed.Package.Path.String(); !seen[p] {
			seen[p] = true
			info.Packages = append(info.Packages, p)
		}
	}
	slices.Sort(info.Packages)

	open, _, err := openPath(path)
	if err != nil {
		return nil, err
	}
	loader, release, err := open()
	if err != nil {
		return nil, err
	}
	err = inspectFiles(loader, info)
	if rerr := release(); rerr != nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	slices.Sort(info.Files)
	return info, nil
}

// inspectFiles lists the loader's files in info and reads the signatures.
func inspectFiles(loader bundle.DirectoryLoader, info *Info) error {
	for {
		f, err := loader.NextFile()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := "/" + strings.TrimPrefix(f.Path(), "/")
		info.Files = append(info.Files, name)
		if bundle.IsSignaturesFile(name) {
			var buf bytes.Buffer
			if _, err := f.Read(&buf, MaxBundleBytes); err != nil && !errors.Is(err, io.EOF) {
				f.Close()
				return err
			}
			if info.Signature, err = parseSignatures(buf.Bytes()); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
}
