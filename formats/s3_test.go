package formats

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/distill-ml/distill/internal/s3test"
	"github.com/distill-ml/distill/internal/store"
)

// TestS3RoundTrip writes every test schema (dtypes f32 and f16, top-k,
// sampled, per-token, hidden states, inputs) in both formats to the fake
// S3, reads it back in order and at random, and verifies it: the same rows
// as written, the same part bytes as the same cache written locally.
func TestS3RoundTrip(t *testing.T) {
	s := s3test.Start(t)
	names := make([]string, 0, len(testConfigs))
	for name := range testConfigs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, format := range []Format{FormatArrow, FormatParquet} {
		for _, name := range names {
			cfg := testConfigs[name]
			loc := s3test.Prefix("rt/" + string(format) + "/" + name)
			opts := &WriterOptions{Format: format, RowsPerBatch: 5}
			m := testManifest(0, 1)
			want := writeCache(t, loc, m, cfg, opts, 100, 12, 7)
			local := t.TempDir()
			writeCache(t, local, m, cfg, opts, 100, 12, 7)

			c, err := Open(loc)
			if err != nil {
				t.Fatalf("%s/%s: %v", format, name, err)
			}
			equalBatch(t, want, readAll(t, c))
			var b Batch
			for _, u := range []int{3, 0, 2, 1} {
				if err := c.ReadBatch(u, &b); err != nil {
					t.Fatalf("%s/%s: unit %d: %v", format, name, u, err)
				}
			}
			rep, err := Verify(c)
			if err != nil || rep.Rows != 19 || len(rep.Leftovers) != 0 {
				t.Fatalf("%s/%s: Verify = %+v, %v", format, name, rep, err)
			}
			c.Close()
			// Part for part, the same bytes as the local cache's (the
			// manifests differ only in the attempts' part names).
			rm, _ := ReadManifest(loc)
			lm, _ := ReadManifest(local)
			for i := range rm.Parts {
				if rm.Parts[i].SHA256 != lm.Parts[i].SHA256 || rm.Parts[i].Rows != lm.Parts[i].Rows {
					t.Errorf("%s/%s: part %d differs from the local write", format, name, i)
				}
			}
			if keys := s.Keys(t, strings.TrimPrefix(loc, "s3://"+s3test.Bucket+"/")+"/"); len(keys) != 3 {
				t.Errorf("%s/%s: %d objects %v, want the manifest and 2 parts", format, name, len(keys), keys)
			}
		}
	}
	if s.Uploads() == 0 {
		t.Fatal("no upload was checked on the server")
	}
}

// TestS3ConcurrentWriters: two attempts at one shard on S3 (a replacement
// pod resuming while the old one still runs) both write all the rows,
// then commit at the same moment: exactly one commit wins, the loser gets
// a *CommittedError and leaves none of its parts, and the cache reads as
// the winner's alone.
func TestS3ConcurrentWriters(t *testing.T) {
	s3test.Start(t)
	testConcurrentWriters(t, s3test.Prefix("dup"))
}

func testConcurrentWriters(t *testing.T, dir string) {
	cfg := testConfigs["topk-f16"]
	opts := &WriterOptions{Format: FormatParquet, RowsPerBatch: 4}
	a, err := CreateCache(dir, testManifest(0, 1), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenCacheForAppend(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.Attempt() == b.Attempt() || b.Resumed() != a.Attempt() {
		t.Fatalf("attempts %s and %s (resumed %s)", a.Attempt(), b.Attempt(), b.Resumed())
	}
	want := concatBatches(makeBatch(cfg, 0, 9, 1), makeBatch(cfg, 9, 9, 2))
	for _, w := range []*CacheWriter{a, b} {
		for i, first := range []int64{0, 9} {
			if _, err := w.WritePart(makeBatch(cfg, first, 9, uint64(i+1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, w := range []*CacheWriter{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Close()
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		var ce *CommittedError
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatal("both attempts committed")
			}
			winner = i
		case errors.As(err, &ce) && errors.Is(err, ErrCommitted) && ce.Manifest.Rows == 18:
		default:
			t.Fatalf("attempt %d: %v, want nil or a *CommittedError", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no attempt committed")
	}
	ws := []*CacheWriter{a, b}
	win, lose := ws[winner], ws[1-winner]
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Parts {
		if !strings.Contains(p.File, win.Attempt()) {
			t.Errorf("committed manifest names %s, not of the winner %s", p.File, win.Attempt())
		}
	}
	d, _ := store.OpenDir(context.Background(), dir)
	for _, name := range listNames(t, d) {
		if strings.Contains(name, lose.Attempt()) {
			t.Errorf("the losing attempt left %s", name)
		}
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	equalBatch(t, want, readAll(t, c))
	if rep, err := Verify(c); err != nil || len(rep.Leftovers) != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// TestS3DamagedParts: a committed part missing, truncated or changed on
// the server is an error naming the object, never data.
func TestS3DamagedParts(t *testing.T) {
	s := s3test.Start(t)
	cfg := testConfigs["f16-label"]
	opts := &WriterOptions{Format: FormatArrow, RowsPerBatch: 4}
	for i, damage := range []string{"missing", "truncated", "changed"} {
		loc := s3test.Prefix(fmt.Sprintf("damaged-%d", i))
		writeCache(t, loc, testManifest(0, 1), cfg, opts, 0, 6, 6)
		m, _ := ReadManifest(loc)
		key := strings.TrimPrefix(loc, "s3://"+s3test.Bucket+"/") + "/" + m.Parts[1].File
		data := s.Object(t, key)
		switch damage {
		case "missing":
			s.Delete(t, key)
		case "truncated":
			s.Put(t, key, data[:len(data)-10])
		case "changed":
			data = slices.Clone(data)
			data[len(data)/2] ^= 1
			s.Put(t, key, data)
		}
		c, err := Open(loc)
		if damage != "changed" {
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(ce.Path, "s3://") || !strings.Contains(err.Error(), m.Parts[1].File) {
				t.Fatalf("%s part: Open = %v, want a *CorruptError naming the object", damage, err)
			}
			if damage == "missing" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing part: %v does not wrap fs.ErrNotExist", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		err = c.ReadBatch(c.NumBatches()-1, &b)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sha256") {
			t.Fatalf("changed part: ReadBatch = %v, want the sha256 mismatch", err)
		}
		c.Close()
	}
}

// TestLeftoversAndGC: the parts of a losing or superseded attempt are
// listed by Verify and removed by GC, which leaves the committed cache
// and an uncommitted shard beside it as they were.
func TestLeftoversAndGC(t *testing.T) {
	t.Run("local", func(t *testing.T) { testLeftovers(t, t.TempDir()) })
	t.Run("s3", func(t *testing.T) {
		s3test.Start(t)
		testLeftovers(t, s3test.Prefix("gc"))
	})
}

func testLeftovers(t *testing.T, parent string) {
	ctx := context.Background()
	cfg := testConfigs["f32"]
	opts := &WriterOptions{Format: FormatParquet, RowsPerBatch: 4}
	dir := store.Join(parent, ShardDirName(0, 2))
	d, _ := store.OpenDir(ctx, dir)
	a, err := CreateCache(dir, testManifest(0, 2), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := concatBatches(makeBatch(cfg, 0, 5, 1), makeBatch(cfg, 5, 3, 2))
	var wantNames []string
	if d.Remote() {
		// A duplicate worker that resumed A, wrote a part and was killed
		// (no lock on object storage: both run).
		b, err := OpenCacheForAppend(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.WritePart(makeBatch(cfg, 0, 5, 1)); err != nil {
			t.Fatal(err)
		}
		b.Discard()
		wantNames = append(wantNames, partFileName(0, b.Attempt(), FormatParquet), journalName(b.Attempt()))
	}
	for i, first := range []int64{0, 5} {
		if _, err := a.WritePart(makeBatch(cfg, first, []int{5, 3}[i], uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Debris of a crashed attempt, in either backend.
	for _, name := range []string{partFileName(0, "0123456789ab", FormatParquet), journalName("0123456789ab")} {
		if _, err := d.WriteFile(ctx, name, []byte("junk"), false); err != nil {
			t.Fatal(err)
		}
		wantNames = append(wantNames, name)
	}
	// Shard 1: interrupted, not committed.
	other := store.Join(parent, ShardDirName(1, 2))
	writeInterruptedAt(t, other, testManifest(1, 2), cfg, opts, 8, 4)

	c := mustOpen(t, parent)
	if got := c.Uncommitted(); len(got) != 1 || got[0] != other {
		t.Fatalf("Uncommitted = %v, want [%s]", got, other)
	}
	rep, err := Verify(c)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Verify with shard 1 uncommitted: %v, want ErrIncomplete", err)
	}
	var names []string
	for _, l := range rep.Leftovers {
		names = append(names, l.Name)
	}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Fatalf("leftovers %v, want %v", names, wantNames)
	}
	removed, err := c.GC()
	if err != nil || len(removed) != len(wantNames) {
		t.Fatalf("GC removed %v, %v", removed, err)
	}
	if lo, err := mustOpen(t, parent).Leftovers(); err != nil || len(lo) != 0 {
		t.Fatalf("leftovers after GC: %v, %v", lo, err)
	}
	equalBatch(t, want, readAll(t, mustOpen(t, dir)))
	if as, err := Attempts(other); err != nil || len(as) != 1 || as[0].Manifest.Rows != 4 {
		t.Fatalf("GC touched the uncommitted shard: %+v, %v", as, err)
	}
}

func mustOpen(t *testing.T, loc string) *Cache {
	t.Helper()
	c, err := OpenWithOptions(&ReaderOptions{AllowMissingShards: true}, loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeInterruptedAt is writeInterrupted for any location.
func writeInterruptedAt(t *testing.T, dir string, m Manifest, cfg Config, opts *WriterOptions, first int64, sizes ...int) {
	t.Helper()
	cw, err := CreateCache(dir, m, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		if _, err := cw.WritePart(makeBatch(cfg, first, n, uint64(i))); err != nil {
			t.Fatal(err)
		}
		first += int64(n)
	}
	cw.Discard()
}

// TestGCS: the same protocol on the fake Google Cloud Storage (the
// create-only commit is GCS's DoesNotExist precondition there): caches of
// per-token f16 and sampled targets read back equal and verify, and two
// attempts committing at once leave one whole cache.
func TestGCS(t *testing.T) {
	s3test.StartGCS(t)
	for _, name := range []string{"seq-dense", "seq-sampled", "topk-f16"} {
		cfg := testConfigs[name]
		loc := s3test.GCSPrefix("rt/" + name)
		want := writeCache(t, loc, testManifest(0, 1), cfg, &WriterOptions{Format: FormatParquet, RowsPerBatch: 5}, 0, 12, 7)
		c := mustOpen(t, loc)
		equalBatch(t, want, readAll(t, c))
		if rep, err := Verify(c); err != nil || rep.Rows != 19 {
			t.Fatalf("%s: Verify = %+v, %v", name, rep, err)
		}
	}
	testConcurrentWriters(t, s3test.GCSPrefix("dup"))
}
