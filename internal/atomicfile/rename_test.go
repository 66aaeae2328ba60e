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
