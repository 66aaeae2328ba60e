package formats

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/internal/s3test"
	"github.com/distill-ml/distill/internal/store"
)

const crashDirEnv = "DISTILL_FORMATS_CRASH_DIR"

// TestCrashHelper is the child process of TestCrash: it appends parts to
// the cache at $DISTILL_FORMATS_CRASH_DIR until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrash")
	}
	cfg := testConfigs["hidden"]
	cw, err := OpenCacheForAppend(dir, nil)
	if errors.Is(err, fs.ErrNotExist) {
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
// deferred clean-up), on a local directory and on the fake S3, and checks
// after each kill that nothing is committed, that the furthest attempt's
// journal lists parts that all verify, with at most its next part
// unlisted, and that resuming continues the rows; at the end a resumed
// attempt commits and the cache reads every row once, in order.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes (-short)")
	}
	t.Run("local", func(t *testing.T) { testCrash(t, t.TempDir(), nil) })
	t.Run("s3", func(t *testing.T) {
		s := s3test.Start(t)
		testCrash(t, s3test.Prefix("crash"), s.Environ())
	})
}

func testCrash(t *testing.T, dir string, env []string) {
	rng := rand.New(rand.NewPCG(5, 6))
	d, err := store.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for kill := 0; kill < 6; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), env...), crashDirEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(200+rng.IntN(400)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()

		if _, err := ReadManifest(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("kill %d: ReadManifest = %v, want not committed", kill, err)
		}
		attempts, err := Attempts(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(attempts) == 0 {
			continue // killed before CreateCache wrote the journal
		}
		best := attempts[0]
		for _, a := range attempts {
			if a.Err != nil {
				t.Fatalf("kill %d: journal: %v", kill, a.Err)
			}
			if a.Manifest.Rows > best.Manifest.Rows {
				best = a
			}
		}
		m := best.Manifest
		listed := map[string]bool{}
		for _, p := range m.Parts {
			listed[p.File] = true
			if err := checkPartFile(d, p); err != nil {
				t.Fatalf("kill %d: listed part: %v", kill, err)
			}
		}
		var unlisted []string
		for _, name := range listNames(t, d) {
			if isPartName(name) && !listed[name] && strings.Contains(name, best.ID) {
				unlisted = append(unlisted, name)
			}
		}
		if len(unlisted) > 1 || len(unlisted) == 1 && unlisted[0] != partFileName(len(m.Parts), best.ID, FormatParquet) {
			t.Fatalf("kill %d: unlisted part files %v of attempt %s with %d listed", kill, unlisted, best.ID, len(m.Parts))
		}
		cw, err := OpenCacheForAppend(dir, nil)
		if err != nil {
			t.Fatalf("kill %d: resume: %v", kill, err)
		}
		if cw.NextRow() < m.Rows {
			t.Fatalf("kill %d: resume at row %d, the journal had %d", kill, cw.NextRow(), m.Rows)
		}
		if len(cw.Dropped()) != 0 {
			t.Fatalf("kill %d: resume dropped %v", kill, cw.Dropped())
		}
		cw.Discard()
		t.Logf("kill %d: %d parts, %d rows, %d unlisted adopted", kill, len(m.Parts), cw.NextRow(), len(unlisted))
	}
	cw, err := OpenCacheForAppend(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
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
	if !d.Remote() {
		for _, name := range listNames(t, d) {
			if strings.Contains(name, ".tmp-") {
				t.Fatalf("temporary file %s left after the commit", name)
			}
		}
	}
}

// listNames lists the names in d.
func listNames(t *testing.T, d *store.Dir) []string {
	t.Helper()
	es, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}
