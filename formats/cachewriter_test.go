package formats

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/internal/lock"
	"github.com/distill-ml/distill/internal/sharedtest"
)

const lockDirEnv = "DISTILL_FORMATS_LOCK_DIR"

// TestLockHelper is the child process of TestCacheWriterLock: it creates a
// cache in $DISTILL_FORMATS_LOCK_DIR, prints "created", and when its stdin
// closes writes one part of 5 rows and closes the writer.
func TestLockHelper(t *testing.T) {
	dir := os.Getenv(lockDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCacheWriterLock")
	}
	cfg := testConfigs["f32"]
	cw, err := CreateCache(dir, testManifest(0, 1), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("created\n")
	io.Copy(io.Discard, os.Stdin)
	if _, err := cw.WritePart(makeBatch(cfg, 0, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCacheWriterLock runs a writer in another process: while it holds the
// cache, CreateCache and OpenCacheForAppend fail at once with ErrLocked
// naming the directory (and change nothing); once it has closed (and so
// committed), the cache holds its part and OpenCacheForAppend refuses the
// committed shard. No lock file or journal is left.
func TestCacheWriterLock(t *testing.T) {
	if !lock.Supported {
		t.Skip("no locks on this system")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cache")
	h := sharedtest.Hold(t, "TestLockHelper", "created", lockDirEnv+"="+dir)
	before := listDir(t, dir)
	for name, open := range map[string]func() (*CacheWriter, error){
		"CreateCache":        func() (*CacheWriter, error) { return CreateCache(dir, testManifest(0, 1), testConfigs["f32"], nil) },
		"OpenCacheForAppend": func() (*CacheWriter, error) { return OpenCacheForAppend(dir, nil) },
	} {
		start := time.Now()
		cw, err := open()
		if err == nil {
			cw.Close()
			t.Fatalf("%s while another process writes: no error", name)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v to fail", name, d)
		}
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "another process") {
			t.Errorf("%s: %v, want ErrLocked naming %s", name, err, dir)
		}
	}
	if got := listDir(t, dir); !slices.Equal(got, before) {
		t.Errorf("refused writers changed the directory: %v, was %v", got, before)
	}
	h.Stop(t)
	if _, err := OpenCacheForAppend(dir, nil); !errors.Is(err, ErrCommitted) {
		t.Fatalf("after the other writer closed: %v, want ErrCommitted", err)
	}
	if m, err := ReadManifest(dir); err != nil || m.Rows != 5 {
		t.Errorf("committed manifest: %d rows, %v; want the helper's 5", m.Rows, err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{ManifestName, "part-00000.arrow"}) {
		t.Errorf("directory holds %v", got)
	}
}

// TestCacheWriterLockSameProcess: the lock belongs to the writer, so a
// second writer in the same process is refused too, until Close.
func TestCacheWriterLockSameProcess(t *testing.T) {
	if !lock.Supported {
		t.Skip("no locks on this system")
	}
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfigs["f32"]
	cw, err := CreateCache(dir, testManifest(0, 1), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCacheForAppend(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	if err := cw.Discard(); err != nil {
		t.Fatal(err)
	}
	cw, err = CreateCache(dir, testManifest(0, 1), cfg, nil)
	if err != nil {
		t.Fatalf("after Discard: %v", err)
	}
	cw.Close()
	if _, err := OpenCacheForAppend(filepath.Join(dir, "nope"), nil); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrLocked) {
		t.Errorf("missing directory: %v, want fs.ErrNotExist", err)
	}
}

// TestCacheWriterDiscard: a writer that committed nothing removes what
// CreateCache made, so that CreateCache succeeds again; in every other
// case Discard keeps the journal and parts for a resume, and commits
// nothing.
func TestCacheWriterDiscard(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["f32"]
	create := func(t *testing.T, dir string) *CacheWriter {
		t.Helper()
		cw, err := CreateCache(dir, testManifest(0, 1), cfg, &WriterOptions{RowsPerBatch: 4})
		if err != nil {
			t.Fatal(err)
		}
		return cw
	}
	t.Run("created directories removed", func(t *testing.T) {
		root := t.TempDir()
		dir := filepath.Join(root, "a", "b", "cache")
		cw := create(t, dir)
		pw, err := cw.NewPart() // an open part is aborted
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(makeBatch(cfg, 0, 3, 1))
		if err := cw.Discard(); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, root); len(got) != 0 {
			t.Errorf("left %v in %s", got, root)
		}
		create(t, dir).Close()
	})
	t.Run("existing directory kept, emptied", func(t *testing.T) {
		dir := t.TempDir()
		if err := create(t, dir).Discard(); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("left %v", got)
		}
		create(t, dir).Close()
	})
	t.Run("directory with other files kept", func(t *testing.T) {
		root := t.TempDir()
		dir := filepath.Join(root, "cache")
		cw := create(t, dir)
		os.WriteFile(filepath.Join(root, "notes.txt"), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "README"), nil, 0o644)
		cw.Discard()
		if got := listDir(t, dir); !slices.Equal(got, []string{"README"}) {
			t.Errorf("cache directory holds %v", got)
		}
	})
	t.Run("committed parts kept", func(t *testing.T) {
		dir := t.TempDir()
		cw := create(t, dir)
		if _, err := cw.WritePart(makeBatch(cfg, 0, 3, 1)); err != nil {
			t.Fatal(err)
		}
		cw.NewPart()
		if err := cw.Discard(); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{"_attempt.json", "part-00000.arrow"}) {
			t.Errorf("directory holds %v", got)
		}
	})
	t.Run("appended cache kept", func(t *testing.T) {
		dir := t.TempDir()
		cw := create(t, dir) // an interrupted earlier run
		cw.WritePart(makeBatch(cfg, 0, 3, 1))
		cw.Discard()
		cw, err := OpenCacheForAppend(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		cw.Discard()
		// The resumed attempt's journal (the one it resumed is gone).
		if got := listDir(t, dir); !slices.Equal(got, []string{"_attempt.json", "part-00000.arrow"}) {
			t.Errorf("directory holds %v", got)
		}
		cw, err = OpenCacheForAppend(dir, nil)
		if err != nil || cw.NextRow() != 3 {
			t.Fatalf("second resume: %v at row %d, want row 3", err, cw.NextRow())
		}
		if err := cw.Close(); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{ManifestName, "part-00000.arrow"}) {
			t.Errorf("after the commit the directory holds %v", got)
		}
	})
	t.Run("after Close nothing", func(t *testing.T) {
		dir := t.TempDir()
		cw := create(t, dir)
		cw.Close()
		if err := cw.Discard(); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{ManifestName}) {
			t.Errorf("directory holds %v", got)
		}
	})
}
