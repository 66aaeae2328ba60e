package formats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// testManifest is a filled-in manifest as extract would pass to CreateCache.
func testManifest(shard, count int) Manifest {
	return Manifest{
		Teacher: Teacher{
			File: "teacher.onnx", SHA256: strings.Repeat("ab", 32), Opset: 17,
			Inputs:   []TensorInfo{{Name: "image", Shape: []int64{-1, 1, 28, 28}, Dtype: "float32"}},
			Outputs:  []TensorInfo{{Name: "logits", Shape: []int64{-1, 10}, Dtype: "float32"}},
			Producer: "pytorch", ProducerVersion: "2.3",
		},
		ScoreKind: ScoreLogits,
		Dataset:   Dataset{Path: "mnist/train", SHA256: strings.Repeat("cd", 32), Rows: 1000, Preprocessing: []string{"scale 1/255"}},
		Settings:  Settings{BatchSize: 64, ShardIndex: shard, ShardCount: count},
		Tool:      "distill test",
		Created:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// writeCache creates a cache in dir with parts of the given sizes (rows ids
// continue from first) and returns all rows written.
func writeCache(t *testing.T, dir string, m Manifest, cfg Config, opts *WriterOptions, first int64, sizes ...int) *Batch {
	t.Helper()
	var all []*Batch
	for i, n := range sizes {
		all = append(all, makeBatch(cfg, first, n, uint64(i)))
		first += int64(n)
	}
	writeParts(t, dir, m, cfg, opts, all...)
	return concatBatches(all...)
}

// readAll streams the cache into one batch.
func readAll(t *testing.T, c *Cache) *Batch {
	t.Helper()
	var all []*Batch
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b.Clone())
	}
	return concatBatches(all...)
}

// listDir returns the names in dir, sorted.
// listDir lists dir with attempt ids stripped from the names
// (part-00000-ID.arrow reads part-00000.arrow, _attempt-ID.json
// _attempt.json), sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, attemptIDRE.ReplaceAllString(e.Name(), ""))
	}
	slices.Sort(names)
	return names
}

var attemptIDRE = regexp.MustCompile(`-[0-9a-f]{12}\b`)

// partFile returns the name of part i of the committed cache in dir.
func partFile(t *testing.T, dir string, i int) string {
	t.Helper()
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m.Parts[i].File
}

func TestCacheRoundTrip(t *testing.T) {
	t.Parallel()
	for _, format := range []Format{FormatArrow, FormatParquet} {
		for _, name := range []string{"hidden", "topk-f16", "inputs"} {
			cfg := testConfigs[name]
			t.Run(string(format)+"/"+name, func(t *testing.T) {
				t.Parallel()
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				dir := t.TempDir()
				want := writeCache(t, dir, testManifest(0, 1), cfg, &WriterOptions{Format: format, RowsPerBatch: 7, Allocator: mem}, 100, 20, 7, 1)
				if got, want := listDir(t, dir), []string{"manifest.json", "part-00000" + format.Ext(), "part-00001" + format.Ext(), "part-00002" + format.Ext()}; !slices.Equal(got, want) {
					t.Fatalf("directory holds %v, want %v", got, want)
				}
				files, _ := filepath.Glob(filepath.Join(dir, "*"))
				for _, f := range files {
					// Readable by other users' tools, like any dataset file.
					if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o644 {
						t.Errorf("%s: mode %v, %v; want 0644", f, st.Mode().Perm(), err)
					}
				}
				c, err := OpenWithOptions(&ReaderOptions{Allocator: mem}, dir)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c.NumRows() != 28 || c.NumBatches() != 3+1+1 {
					t.Fatalf("rows %d batches %d, want 28 and 5", c.NumRows(), c.NumBatches())
				}
				stream := readAll(t, c)
				equalBatch(t, want, stream)

				// Random access in a shuffled order returns the same rows.
				units := c.Units()
				order := rand.New(rand.NewPCG(1, 2)).Perm(len(units))
				got := make([]*Batch, len(units))
				var b Batch
				for _, u := range order {
					if err := c.ReadBatch(u, &b); err != nil {
						t.Fatal(err)
					}
					if b.Len() != units[u].Rows || b.Rows[0] != 100+units[u].Offset {
						t.Fatalf("unit %d: %d rows from row %d, want %d from %d", u, b.Len(), b.Rows[0], units[u].Rows, 100+units[u].Offset)
					}
					got[u] = b.Clone()
				}
				equalBatch(t, want, concatBatches(got...))

				m := c.Manifest()
				if m.Version != Version || m.Rows != 28 || len(m.Parts) != 3 || m.Settings.Format != format || m.Settings.RowsPerBatch != 7 {
					t.Errorf("manifest %+v", m)
				}
				if c.Digest() != m.Digest() || len(c.Digest()) != 64 {
					t.Errorf("digest %q", c.Digest())
				}
				rep, err := Verify(c)
				if err != nil || !rep.OK() || rep.Rows != 28 || rep.Parts != 3 || rep.Batches != 5 {
					t.Fatalf("Verify = %+v, %v", rep, err)
				}
			})
		}
	}
}

func TestCacheShards(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["f16-label"]
	root := t.TempDir()
	var dirs []string
	var want []*Batch
	for i := 0; i < 3; i++ {
		dir := filepath.Join(root, "shard"+string(rune('0'+i)))
		dirs = append(dirs, dir)
		want = append(want, writeCache(t, dir, testManifest(i, 3), cfg, &WriterOptions{Format: FormatParquet, RowsPerBatch: 4}, int64(1000*i), 5, 3))
	}
	// Shards given in any order are read in shard order.
	c, err := Open(dirs[2], filepath.Join(dirs[0], ManifestName), dirs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.NumRows() != 24 || len(c.Manifests()) != 3 || len(c.MissingShards()) != 0 {
		t.Fatalf("rows %d manifests %d missing %v", c.NumRows(), len(c.Manifests()), c.MissingShards())
	}
	equalBatch(t, concatBatches(want...), readAll(t, c))

	t.Run("parent directory", func(t *testing.T) {
		parent := t.TempDir()
		for i := 0; i < 2; i++ {
			writeCache(t, filepath.Join(parent, ShardDirName(i, 2)), testManifest(i, 2), cfg, nil, int64(10*i), 3)
		}
		os.Mkdir(filepath.Join(parent, "shard-x"), 0o755) // not a shard directory
		c, err := Open(parent)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.NumRows() != 6 || len(c.Manifests()) != 2 || c.Units()[1].Path != filepath.Join(parent, ShardDirName(1, 2), partFile(t, filepath.Join(parent, ShardDirName(1, 2)), 0)) {
			t.Fatalf("rows %d manifests %d units %+v", c.NumRows(), len(c.Manifests()), c.Units())
		}
		os.RemoveAll(filepath.Join(parent, ShardDirName(0, 2)))
		if _, err := Open(parent); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("Open without shard 0: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Open(dirs[0], dirs[2])
		if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "[1]") {
			t.Fatalf("Open without shard 1: %v", err)
		}
		c, err := OpenWithOptions(&ReaderOptions{AllowMissingShards: true}, dirs[0], dirs[2])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rep, err := Verify(c)
		if !errors.Is(err, ErrIncomplete) || !slices.Equal(rep.MissingShards, []int{1}) || len(rep.Problems) != 0 {
			t.Fatalf("Verify = %+v, %v", rep, err)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		dup := filepath.Join(root, "dup")
		writeCache(t, dup, testManifest(1, 3), cfg, &WriterOptions{Format: FormatParquet, RowsPerBatch: 4}, 0, 2)
		if _, err := Open(dirs[0], dirs[1], dup); !errors.Is(err, ErrSchema) {
			t.Fatalf("Open with shard 1 twice: %v", err)
		}
	})
	t.Run("disagree", func(t *testing.T) {
		cases := map[string]func(m *Manifest, cfg *Config){
			"teacher":  func(m *Manifest, cfg *Config) { m.Teacher.SHA256 = strings.Repeat("ef", 32) },
			"schema":   func(m *Manifest, cfg *Config) { cfg.ScoreDtype = Float32 },
			"settings": func(m *Manifest, cfg *Config) { m.Settings.BatchSize = 7 },
			"count":    func(m *Manifest, cfg *Config) { m.Settings.ShardCount = 4 },
		}
		for name, mutate := range cases {
			m, cfg := testManifest(1, 3), testConfigs["f16-label"]
			mutate(&m, &cfg)
			dir := filepath.Join(root, "bad-"+name)
			writeCache(t, dir, m, cfg, &WriterOptions{Format: FormatParquet, RowsPerBatch: 4}, 0, 2)
			if _, err := Open(dirs[0], dir, dirs[2]); !errors.Is(err, ErrSchema) {
				t.Errorf("%s: Open = %v, want ErrSchema", name, err)
			}
		}
	})
}

// writeInterrupted is writeCache for a run that stopped before committing:
// the attempt's journal and parts stay, manifest.json is not written. It
// returns the rows and the attempt id.
func writeInterrupted(t *testing.T, dir string, m Manifest, cfg Config, opts *WriterOptions, first int64, sizes ...int) (*Batch, string) {
	t.Helper()
	cw, err := CreateCache(dir, m, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	var all []*Batch
	for i, n := range sizes {
		b := makeBatch(cfg, first, n, uint64(i))
		all = append(all, b)
		first += int64(n)
		if _, err := cw.WritePart(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Discard(); err != nil {
		t.Fatal(err)
	}
	return concatBatches(all...), cw.Attempt()
}

func TestCacheAppend(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["topk-f32"]
	opts := &WriterOptions{Format: FormatArrow, Compression: CompressionZstd, RowsPerBatch: 4}
	dir := t.TempDir()
	first, _ := writeInterrupted(t, dir, testManifest(0, 1), cfg, opts, 0, 6, 5)

	// Simulated crash debris: a half-written part, a stale journal temp file.
	os.WriteFile(filepath.Join(dir, ".part-00002.arrow.tmp-123"), []byte("ARROW1 half"), 0o644)
	os.WriteFile(filepath.Join(dir, "._attempt-0123456789ab.json.tmp-9"), []byte("{"), 0o644)
	// Readers see no cache until an attempt commits.
	if _, err := Open(dir); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "11 rows") || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("Open of an uncommitted cache: %v, want ErrIncomplete naming its 11 rows and --resume", err)
	}

	cw, err := OpenCacheForAppend(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cw.NextRow() != 11 || len(cw.Dropped()) != 0 {
		t.Fatalf("NextRow %d dropped %v", cw.NextRow(), cw.Dropped())
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"_attempt.json", "part-00000.arrow", "part-00001.arrow"}) {
		t.Fatalf("after recovery the directory holds %v", got)
	}
	more := makeBatch(cfg, 11, 9, 7)
	pw, err := cw.NewPart()
	if err != nil {
		t.Fatal(err)
	}
	// The open part is a hidden temporary file that *.arrow does not match.
	if names, _ := filepath.Glob(filepath.Join(dir, "*.arrow")); len(names) != 2 {
		t.Fatalf("glob while writing: %v", names)
	}
	if err := pw.Write(more); err != nil {
		t.Fatal(err)
	}
	info, err := pw.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if info.File != partFileName(2, cw.Attempt(), FormatArrow) || info.FirstRow != 11 || info.Rows != 9 {
		t.Fatalf("part %+v", info)
	}
	cw.Discard()
	if _, err := OpenCacheForAppend(dir, &WriterOptions{Format: FormatParquet}); !errors.Is(err, ErrSchema) {
		t.Fatalf("append with another format: %v", err)
	}
	cw, err = OpenCacheForAppend(dir, nil)
	if err != nil || cw.NextRow() != 20 {
		t.Fatalf("second resume: %v at row %d, want 20", err, cw.NextRow())
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"manifest.json", "part-00000.arrow", "part-00001.arrow", "part-00002.arrow"}) {
		t.Fatalf("after the commit the directory holds %v", got)
	}
	if _, err := OpenCacheForAppend(dir, nil); !errors.Is(err, ErrCommitted) {
		t.Fatalf("append to a committed cache: %v, want ErrCommitted", err)
	}

	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	equalBatch(t, concatBatches(first, more), readAll(t, c))
	if _, err := Verify(c); err != nil {
		t.Fatal(err)
	}
}

func TestCacheAppendRecovers(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["f32"]
	opts := &WriterOptions{Format: FormatParquet, RowsPerBatch: 3}
	t.Run("damaged part dropped", func(t *testing.T) {
		dir := t.TempDir()
		_, id := writeInterrupted(t, dir, testManifest(0, 1), cfg, opts, 0, 4, 4, 4)
		path := filepath.Join(dir, partFileName(1, id, FormatParquet))
		data, _ := os.ReadFile(path)
		data[len(data)/2] ^= 0xff
		os.WriteFile(path, data, 0o644)
		cw, err := OpenCacheForAppend(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cw.Close()
		// Part 1 fails its sha256: parts 1 and 2 go, part 0 stays.
		if want := []string{partFileName(1, id, FormatParquet), partFileName(2, id, FormatParquet)}; cw.NextRow() != 4 || !slices.Equal(cw.Dropped(), want) {
			t.Fatalf("NextRow %d dropped %v, want 4 and %v", cw.NextRow(), cw.Dropped(), want)
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{"_attempt.json", "part-00000.parquet"}) {
			t.Fatalf("directory holds %v", got)
		}
		if m := cw.Manifest(); m.Rows != 4 || len(m.Parts) != 1 {
			t.Fatalf("manifest %+v", m)
		}
	})
	t.Run("unlisted complete part adopted", func(t *testing.T) {
		// A crash after the upload of part 2 but before the journal update.
		dir := t.TempDir()
		writeInterrupted(t, dir, testManifest(0, 1), cfg, opts, 0, 4, 5)
		want := writeCache(t, t.TempDir(), testManifest(0, 1), cfg, opts, 0, 4, 5)
		cw, _ := OpenCacheForAppend(dir, nil)
		before, _ := os.ReadFile(filepath.Join(dir, journalName(cw.Attempt())))
		extra := makeBatch(cfg, 9, 2, 99)
		if _, err := cw.WritePart(extra); err != nil {
			t.Fatal(err)
		}
		cw.Discard()
		os.WriteFile(filepath.Join(dir, journalName(cw.Attempt())), before, 0o644)
		// And an unrelated stray part that is not the next one.
		os.WriteFile(filepath.Join(dir, "part-00007.parquet"), []byte("PAR1"), 0o644)

		cw, err := OpenCacheForAppend(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cw.NextRow() != 11 || !slices.Equal(cw.Dropped(), []string{"part-00007.parquet"}) {
			t.Fatalf("NextRow %d dropped %v", cw.NextRow(), cw.Dropped())
		}
		if err := cw.Close(); err != nil {
			t.Fatal(err)
		}
		c, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		equalBatch(t, concatBatches(want, extra), readAll(t, c))
		if _, err := Verify(c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("create refuses existing cache", func(t *testing.T) {
		dir := t.TempDir()
		writeCache(t, dir, testManifest(0, 1), cfg, opts, 0, 1)
		if _, err := CreateCache(dir, testManifest(0, 1), cfg, opts); err == nil {
			t.Fatal("CreateCache over an existing cache succeeded")
		}
	})
	t.Run("abort leaves nothing", func(t *testing.T) {
		dir := t.TempDir()
		cw, err := CreateCache(dir, testManifest(0, 1), cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := cw.NewPart()
		pw.Write(makeBatch(cfg, 0, 3, 1))
		if _, err := cw.NewPart(); err == nil {
			t.Fatal("second open part allowed")
		}
		cw.Close() // aborts the open part
		if got := listDir(t, dir); !slices.Equal(got, []string{"manifest.json"}) {
			t.Fatalf("directory holds %v", got)
		}
		if _, err := cw.WritePart(makeBatch(cfg, 0, 1, 1)); err == nil {
			t.Fatal("WritePart after Close succeeded")
		}
	})
}

// TestCacheConcurrent reads units from several goroutines, over more parts
// than the cache keeps open, so parts are evicted and reopened under load.
func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["topk-f16"]
	dir := t.TempDir()
	sizes := make([]int, maxOpenParts+4)
	for i := range sizes {
		sizes[i] = 3
	}
	want := writeCache(t, dir, testManifest(0, 1), cfg, &WriterOptions{RowsPerBatch: 2}, 0, sizes...)
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	units := c.Units()
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			var b Batch
			for i := 0; i < 200; i++ {
				u := rng.IntN(len(units))
				if err := c.ReadBatch(u, &b); err != nil {
					errs <- err
					return
				}
				k := cfg.TopK
				off := int(units[u].Offset)
				if b.Rows[0] != int64(off) || b.TopKIndex[0] != want.TopKIndex[off*k] {
					errs <- fmt.Errorf("unit %d: row %d index %d, want %d %d", u, b.Rows[0], b.TopKIndex[0], off, want.TopKIndex[off*k])
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCacheHashCheck changes one stored value of the second part without
// breaking its encoding: decoding alone would return the wrong value. A
// Cache refuses every unit of that part with a *CorruptError naming it
// (sha256 against the manifest, checked on its first read), reads the
// other part, and with SkipHashCheck returns the wrong value unnoticed.
func TestCacheHashCheck(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["f32"]
	for _, format := range []Format{FormatArrow, FormatParquet} {
		t.Run(string(format), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := &WriterOptions{Format: format, Compression: CompressionNone, RowsPerBatch: 4}
			cw, err := CreateCache(dir, testManifest(0, 1), cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			b0, b1 := makeBatch(cfg, 0, 8, 1), makeBatch(cfg, 8, 8, 2)
			const marker, changed = 1234.5, 42.25 // exact in float32, unlike makeBatch's values
			b1.Logits[0] = marker
			for _, b := range []*Batch{b0, b1} {
				if _, err := cw.WritePart(b); err != nil {
					t.Fatal(err)
				}
			}
			cw.Close()
			path := filepath.Join(dir, partFile(t, dir, 1))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Arrow stores the float32 little-endian; Parquet with
			// BYTE_STREAM_SPLIT spreads its four bytes over four streams,
			// one byte per value of the row group (4 rows × 10 classes).
			stride := 1
			if format == FormatParquet {
				stride = opts.RowsPerBatch * cfg.Classes
			}
			if !replaceFloat(data, marker, changed, stride) {
				t.Fatalf("value %v not found in %s", float32(marker), path)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}

			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var b Batch
			if err := c.ReadBatch(0, &b); err != nil {
				t.Fatalf("unit of the intact part: %v", err)
			}
			for range 2 { // the outcome is kept: every read fails
				for u := 2; u < 4; u++ {
					err := c.ReadBatch(u, &b)
					var ce *CorruptError
					if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(err.Error(), "sha256") {
						t.Fatalf("unit %d of the changed part: %v, want a *CorruptError naming %s and sha256", u, err, path)
					}
				}
			}
			n := 0
			for _, err := range c.All() {
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("All: %v", err)
					}
					break
				}
				n++
			}
			if n != 2 {
				t.Errorf("All yielded %d units before the error, want the 2 of part 0", n)
			}

			// Opting out: the changed value is read back as if stored.
			raw, err := OpenWithOptions(&ReaderOptions{SkipHashCheck: true}, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if err := raw.ReadBatch(2, &b); err != nil || b.Logits[0] != changed {
				t.Fatalf("SkipHashCheck: logits[0] = %v, %v; want the changed %v", b.Logits[0], err, float32(changed))
			}
			// Verify reports the part once, as before, whatever the option.
			if rep, err := Verify(raw); !errors.Is(err, ErrCorrupt) || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Error(), "sha256") {
				t.Fatalf("Verify = %+v, %v", rep, err)
			}
		})
	}
}

// replaceFloat replaces the float32 from in data by to, its four
// little-endian bytes stride bytes apart, and reports whether it found it.
func replaceFloat(data []byte, from, to float32, stride int) bool {
	f, g := math.Float32bits(from), math.Float32bits(to)
	for i := 0; i+3*stride < len(data); i++ {
		ok := true
		for k := 0; k < 4 && ok; k++ {
			ok = data[i+k*stride] == byte(f>>(8*k))
		}
		if ok {
			for k := 0; k < 4; k++ {
				data[i+k*stride] = byte(g >> (8 * k))
			}
			return true
		}
	}
	return false
}
