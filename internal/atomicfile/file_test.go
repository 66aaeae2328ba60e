package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// temps returns the temporary files of target in its directory.
func temps(t *testing.T, target string) []string {
	t.Helper()
	var out []string
	for _, n := range entries(t, filepath.Dir(target)) {
		if strings.HasPrefix(n, "."+filepath.Base(target)+".tmp-") {
			out = append(out, n)
		}
	}
	return out
}

// wantFile fails unless path holds exactly data.
func wantFile(t *testing.T, path string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s holds %q, want %q", path, got, data)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	for _, perm := range []os.FileMode{0o644, 0o600, 0o640, 0o755} {
		t.Run(perm.String(), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "manifest.json")
			if err := WriteFile(path, []byte("first"), perm); err != nil {
				t.Fatal(err)
			}
			wantFile(t, path, []byte("first"))
			// Replacing keeps the path whole and takes the new mode.
			if err := WriteFile(path, []byte("second, longer"), perm); err != nil {
				t.Fatal(err)
			}
			wantFile(t, path, []byte("second, longer"))
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != perm {
				t.Errorf("mode %v, want %v (set exactly, umask ignored)", fi.Mode().Perm(), perm)
			}
			if left := temps(t, path); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "no", "such", "x.onnx")
	if err := WriteFile(path, []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile into a missing directory: no error")
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("WriteFile made %v", names)
	}
	if err := WriteFileAll(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, []byte("x"))
}

// TestWriteFileOverDirectory checks that a failing rename (the target is a
// non-empty directory) removes the temporary file and leaves the target.
func TestWriteFileOverDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(filepath.Join(path, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile over a directory: no error")
	}
	if names := entries(t, filepath.Dir(path)); len(names) != 1 || names[0] != "out" {
		t.Errorf("directory holds %v, want only out", names)
	}
	if names := entries(t, path); len(names) != 1 {
		t.Errorf("target directory changed: %v", names)
	}
}

// TestCreate streams into a File and checks that the target keeps its old
// content until Commit, while only a hidden .NAME.tmp-* file exists.
func TestCreate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "part-00000.arrow")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !strings.HasPrefix(filepath.Base(f.Name()), ".part-00000.arrow.tmp-") {
		t.Errorf("temporary file %s: want .part-00000.arrow.tmp-*", f.Name())
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.arrow")); len(m) != 1 {
		t.Errorf("*.arrow matches %v, want the target only", m)
	}
	for range 3 {
		if _, err := f.WriteString("new "); err != nil {
			t.Fatal(err)
		}
	}
	wantFile(t, path, []byte("old"))
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, []byte("new new new "))
	if left := temps(t, path); len(left) > 0 {
		t.Errorf("temporary files left after Commit: %v", left)
	}
	if err := f.Commit(); err == nil {
		t.Error("second Commit: no error")
	}
	if err := f.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	wantFile(t, path, []byte("new new new "))
}

// TestAbort checks that Abort and Close without Commit remove the
// temporary file and leave an existing target untouched.
func TestAbort(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"Abort", "Close"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "student.onnx")
			if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Create(path, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("half a model"); err != nil {
				t.Fatal(err)
			}
			if name == "Abort" {
				err = f.Abort()
			} else {
				err = f.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Abort(); err != nil {
				t.Errorf("second Abort: %v", err)
			}
			if err := f.Commit(); err == nil {
				t.Error("Commit after Abort: no error")
			}
			wantFile(t, path, []byte("old"))
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("target mode changed to %v", fi.Mode().Perm())
			}
			if names := entries(t, filepath.Dir(path)); len(names) != 1 {
				t.Errorf("directory holds %v, want only the target", names)
			}
		})
	}
}

// TestNoCommit stands for a crash before Commit (the process ends without
// Commit, Abort or Close): the target is as it was, or absent if it was,
// and the only trace is the hidden temporary file.
func TestNoCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(existing, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "part-00001.parquet")
	for _, path := range []string{existing, fresh} {
		f, err := Create(path, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(`{"parts": [`); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.File.Close() // what a crash does: the descriptor goes, nothing else
	}
	wantFile(t, existing, []byte("{}\n"))
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("%s exists without Commit (%v)", fresh, err)
	}
	for _, path := range []string{existing, fresh} {
		if left := temps(t, path); len(left) != 1 {
			t.Errorf("temporary files of %s: %v, want one", filepath.Base(path), left)
		}
	}
}

func TestCommitNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manifest.json")
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("first")
	g, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteString("second")
	if err := f.CommitNew(); err != nil {
		t.Fatal(err)
	}
	if err := g.CommitNew(); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CommitNew: %v, want fs.ErrExist", err)
	}
	wantFile(t, path, []byte("first"))
	if got := entries(t, dir); len(got) != 1 {
		t.Fatalf("directory holds %v, want only the target", got)
	}
}
