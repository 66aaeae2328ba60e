package lock

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distill-ml/distill/internal/sharedtest"
)

// helperEnv makes the test binary a lock holder: "dir:PATH" or "file:PATH".
const helperEnv = "DISTILL_LOCK_HELPER"

// fast is how long a refused lock may take: it must not wait for the
// holder (a blocking flock would wait until the helper exits, seconds).
const fast = time.Second

// TestHelper is the child process of the two-process tests: it takes the
// lock named by $DISTILL_LOCK_HELPER, prints "locked", holds it until its
// stdin closes, releases it and exits.
func TestHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for the two-process tests")
	}
	kind, path, _ := strings.Cut(spec, ":")
	take := Dir
	if kind == "file" {
		take = File
	}
	release, err := take(path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	if err := release(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startHolder starts a helper process holding spec and waits until it
// holds it.
func startHolder(t *testing.T, spec string) *sharedtest.Holder {
	t.Helper()
	if !Supported {
		t.Skip("no flock on this system: Dir and File do nothing")
	}
	return sharedtest.Hold(t, "TestHelper", "locked", helperEnv+"="+spec)
}

// refused checks that take fails at once with ErrLocked naming path.
func refused(t *testing.T, take func(string) (func() error, error), path string) {
	t.Helper()
	start := time.Now()
	release, err := take(path)
	if err == nil {
		release()
		t.Fatal("second lock taken while the first is held")
	}
	if d := time.Since(start); d > fast {
		t.Errorf("refusal took %v", d)
	}
	if !errors.Is(err, ErrLocked) || err.Error() != "lock: held by another process: "+path {
		t.Errorf("error %q, want ErrLocked naming %s", err, path)
	}
}

func TestDirTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, "dir:"+dir)
	refused(t, Dir, dir)
	h.Stop(t)
	release, err := Dir(dir)
	if err != nil {
		t.Fatalf("after the holder released: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("Dir left %d entries", len(es))
	}
}

func TestFileTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	h := startHolder(t, "file:"+path)
	refused(t, File, path)
	h.Stop(t)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file after the holder released: %v", err)
	}
	release, err := File(path)
	if err != nil {
		t.Fatalf("after the holder released: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file after release: %v", err)
	}
}

// TestKilledHolder: SIGKILL drops the lock; a stale lock file is taken
// over and removed.
func TestKilledHolder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".x.lock")
	for _, spec := range []string{"dir:" + dir, "file:" + path} {
		startHolder(t, spec).Kill()
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a killed holder leaves its lock file: %v", err)
	}
	rd, err := Dir(dir)
	if err != nil {
		t.Fatalf("Dir after kill: %v", err)
	}
	rf, err := File(path)
	if err != nil {
		t.Fatalf("File after kill: %v", err)
	}
	rd()
	rf()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale lock file not removed: %v", err)
	}
}

// TestSameProcess: locks belong to open files, so a process conflicts with
// itself.
func TestSameProcess(t *testing.T) {
	if !Supported {
		t.Skip("no flock on this system")
	}
	dir := t.TempDir()
	release, err := Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, Dir, dir)
	release()
	if release, err = Dir(dir); err != nil {
		t.Fatalf("after release: %v", err)
	}
	release()
	if _, err := Dir(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	if _, err := Dir(f); err == nil {
		t.Error("Dir of a regular file succeeded")
	}
}

// TestFileExclusive has goroutines take and release one lock file as fast
// as they can: never two holders at once, although release removes the
// file others have open (the case File's same-file check handles).
func TestFileExclusive(t *testing.T) {
	if !Supported {
		t.Skip("no flock on this system")
	}
	path := filepath.Join(t.TempDir(), ".x.lock")
	var holders, taken atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				release, err := File(path)
				if errors.Is(err, ErrLocked) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				taken.Add(1)
				time.Sleep(50 * time.Microsecond) // let the others try meanwhile
				if n := holders.Add(-1); n != 0 {
					t.Errorf("%d holders at once", n+1)
				}
				if err := release(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if taken.Load() == 0 {
		t.Error("no goroutine ever took the lock")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}
}
