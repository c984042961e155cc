package bundles

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// TestTarballDeclaredSizes: a tar header declaring a file larger than
// MaxBundleBytes fails the read before anything is allocated for it, even
// a size no slice can hold; the archive is a few hundred bytes.
func TestTarballDeclaredSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
	}{
		{"fail/more than can be allocated", 1 << 62},
		{"fail/just over the limit", MaxBundleBytes + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tar.Header{Name: "/data.json", Mode: 0o644, Size: c.size, Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			tw.Flush() // the header only: its data never comes
			tgz := gzipped(buf.Bytes())
			if b, err := readTarball(tgz, nil); err == nil {
				t.Fatalf("read %+v", b)
			}
			t.Logf("a download of %d bytes is refused", len(tgz))
		})
	}
}

// TestTarballUnpackBudget: files that unpack to more than MaxUnpackedBytes
// together are refused, and the file that would pass the budget is never
// buffered.
func TestTarballUnpackBudget(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "/data.json", Mode: 0o644, Size: MaxUnpackedBytes + 1, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Flush() // the header only: a file over the budget is never read
	if b, err := readTarball(gzipped(buf.Bytes()), nil); err == nil || !strings.Contains(err.Error(), "unpacks to more than") {
		t.Fatalf("read %+v, %v", b, err)
	}

	budget := &unpackBudget{left: MaxUnpackedBytes}
	for i, size := range []int64{MaxUnpackedBytes / 2, MaxUnpackedBytes / 2} {
		if budget.take(fmt.Sprintf("/f%d", i), fileInfo{size}, 1) || budget.err != nil {
			t.Fatalf("file %d of %d bytes refused: %v", i, size, budget.err)
		}
	}
	if !budget.take("/last", fileInfo{1}, 1) || budget.err == nil {
		t.Fatal("a byte past the budget is taken")
	}
	if !budget.take("/after", fileInfo{0}, 1) {
		t.Fatal("a file after the budget ran out is taken")
	}
}

// fileInfo is a regular file of a size.
type fileInfo struct{ size int64 }

func (f fileInfo) Name() string       { return "f" }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() fs.FileMode  { return 0o644 }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return false }
func (f fileInfo) Sys() any           { return nil }
