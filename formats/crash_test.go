package formats

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const crashDirEnv = "DISTILL_FORMATS_CRASH_DIR"

// TestCrashHelper is the child process of TestCrash: it appends parts to
// the cache in $DISTILL_FORMATS_CRASH_DIR until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrash")
	}
	cfg := testConfigs["hidden"]
	var cw *CacheWriter
	var err error
	if _, serr := os.Stat(filepath.Join(dir, ManifestName)); serr == nil {
		cw, err = OpenCacheForAppend(dir, nil)
	} else {
		cw, err = CreateCache(dir, testManifest(0, 1), cfg, &WriterOptions{Format: FormatParquet, RowsPerBatch: 16})
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := cw.WritePart(makeBatch(cfg, cw.NextRow(), 20+i%50, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrash kills a writing process at random moments (SIGKILL: no
// deferred clean-up) and checks after each kill that the directory holds a
// valid manifest whose parts all verify, at most one complete unlisted
// part, and that OpenCacheForAppend resumes to a clean cache.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes (-short)")
	}
	t.Parallel()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	for kill := 0; kill < 6; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()

		m, err := ReadManifest(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue // killed before CreateCache wrote the first manifest
		}
		if err != nil {
			t.Fatalf("kill %d: manifest: %v", kill, err)
		}
		listed := map[string]bool{}
		for _, p := range m.Parts {
			listed[p.File] = true
			if err := checkPartFile(filepath.Join(dir, p.File), p); err != nil {
				t.Fatalf("kill %d: listed part: %v", kill, err)
			}
		}
		var unlisted []string
		for _, name := range listDir(t, dir) {
			if isPartName(name) && !listed[name] {
				unlisted = append(unlisted, name)
			}
		}
		if len(unlisted) > 1 || len(unlisted) == 1 && unlisted[0] != fmt.Sprintf("part-%05d.parquet", len(m.Parts)) {
			t.Fatalf("kill %d: unlisted part files %v with %d listed", kill, unlisted, len(m.Parts))
		}
		cw, err := OpenCacheForAppend(dir, nil)
		if err != nil {
			t.Fatalf("kill %d: resume: %v", kill, err)
		}
		if len(cw.Dropped()) != 0 {
			t.Fatalf("kill %d: resume dropped %v", kill, cw.Dropped())
		}
		cw.Close()
		for _, name := range listDir(t, dir) {
			if strings.Contains(name, ".tmp-") {
				t.Fatalf("kill %d: temporary file %s left after resume", kill, name)
			}
		}
		t.Logf("kill %d: %d parts, %d rows, %d unlisted adopted", kill, len(m.Parts), cw.NextRow(), len(unlisted))
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Verify(c); err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Rows {
			if r != next {
				t.Fatalf("row %d where %d expected: rows lost or repeated across kills", r, next)
			}
			next++
		}
	}
	if next == 0 {
		t.Fatal("no rows written before the kills")
	}
}
