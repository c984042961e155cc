package bundles

import (
	"archive/tar"
	"bytes"
	"testing"
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
