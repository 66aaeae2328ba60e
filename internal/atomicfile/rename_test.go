package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRename(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A directory swap within one parent, as train.WriteCheckpoint does.
	ckpt, tmp := filepath.Join(dir, "s.ckpt"), filepath.Join(dir, ".s.ckpt.tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Rename(tmp, ckpt); err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(ckpt, "config.json"), []byte("{}"))
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", tmp, err)
	}
	// A file into another directory: both directories are synced.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Rename(filepath.Join(ckpt, "config.json"), filepath.Join(sub, "c.json")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(sub, "c.json"), []byte("{}"))
	if err := Rename(filepath.Join(dir, "missing"), filepath.Join(dir, "x")); err == nil {
		t.Error("Rename of a missing file: no error")
	}
}

func TestSyncDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("SyncDir of a missing directory: no error")
	}
}

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	made, err := MkdirAll(filepath.Join(root, "a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "a", "b", "c"), filepath.Join(root, "a", "b"), filepath.Join(root, "a")}
	if len(made) != 3 || made[0] != want[0] || made[1] != want[1] || made[2] != want[2] {
		t.Fatalf("created %q, want %q", made, want)
	}
	if again, err := MkdirAll(filepath.Join(root, "a", "b")); err != nil || len(again) != 0 {
		t.Errorf("existing directory: created %q, %v", again, err)
	}
	// A file in b keeps b and a; c goes.
	if err := os.WriteFile(filepath.Join(root, "a", "b", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	RemoveEmptyDirs(made)
	if _, err := os.Stat(want[0]); !os.IsNotExist(err) {
		t.Errorf("c kept: %v", err)
	}
	if _, err := os.Stat(want[1]); err != nil {
		t.Errorf("b removed though not empty: %v", err)
	}
}
