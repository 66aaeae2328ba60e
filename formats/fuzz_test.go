package formats

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the seed corpora in testdata/fuzz")

// fuzzSeedParts are the small valid part files of the FuzzReader corpus:
// every container and codec, every column kind.
func fuzzSeedParts(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{}
	add := func(name, cfgName string, o WriterOptions, rows int) {
		cfg := must(testConfigs[cfgName].normalize())
		o.RowsPerBatch = 2
		m := testManifest(0, 1)
		m.fill(cfg, must(o.resolve(cfg)))
		o.Metadata = map[string]string{MetaManifest: mustJSON(m.partCopy())}
		seeds[name] = writePart(t, cfg, &o, makeBatch(cfg, 0, rows, 1))
	}
	add("arrow-f32", "f32", WriterOptions{Format: FormatArrow}, 3)
	add("arrow-lz4-hidden", "hidden", WriterOptions{Format: FormatArrow, Compression: CompressionLZ4}, 3)
	add("arrow-zstd-topk-f16", "topk-f16", WriterOptions{Format: FormatArrow, Compression: CompressionZstd}, 3)
	add("arrow-inputs", "inputs", WriterOptions{Format: FormatArrow}, 2)
	add("parquet-f16-label", "f16-label", WriterOptions{Format: FormatParquet, Compression: CompressionNone}, 3)
	add("parquet-zstd-topk", "topk-f32", WriterOptions{Format: FormatParquet}, 3)
	add("parquet-lz4-hidden", "hidden", WriterOptions{Format: FormatParquet, Compression: CompressionLZ4}, 2)
	add("parquet-seq-sampled", "seq-sampled", WriterOptions{Format: FormatParquet}, 3)
	add("arrow-sampled", "sampled", WriterOptions{Format: FormatArrow}, 3)
	return seeds
}

func mustJSON(m Manifest) string {
	return string(must(jsonMarshal(&m)))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// fuzzSeedManifests are the seeds of FuzzManifest.
func fuzzSeedManifests(t testing.TB) map[string][]byte {
	dir := t.TempDir()
	m := testManifest(1, 2)
	writeCache(t.(*testing.T), dir, m, testConfigs["hidden"], &WriterOptions{Format: FormatParquet, RowsPerBatch: 2}, 0, 3, 1)
	full := must(os.ReadFile(filepath.Join(dir, ManifestName)))
	m2, _ := ReadManifest(dir)
	pc := m2.partCopy()
	return map[string][]byte{
		"manifest-parts":     full,
		"manifest-part-copy": must(jsonMarshal(&pc)),
		"manifest-minimal": []byte(`{"version":"1.0","score_kind":"log_probs","classes":2,"settings":{"top_k":1,"dtype":"float16",` +
			`"shard_index":0,"shard_count":1,"format":"arrow","compression":"lz4","rows_per_batch":1},"rows":0}`),
	}
}

// TestFuzzCorpus checks that the committed seed corpora exist and decode;
// with -update it rewrites them.
func TestFuzzCorpus(t *testing.T) {
	corpora := map[string]map[string][]byte{
		"FuzzReader":   fuzzSeedParts(t),
		"FuzzManifest": fuzzSeedManifests(t),
	}
	for target, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seeds {
			path := filepath.Join(dir, name)
			if *update {
				os.MkdirAll(dir, 0o755)
				if err := os.WriteFile(path, []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(data))+")\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("seed %s missing; run go test -run TestFuzzCorpus -update", path)
			}
		}
	}
	if _, err := readAllParts(fuzzSeedParts(t)["parquet-zstd-topk"]); err != nil {
		t.Fatal(err)
	}
}

// FuzzReader feeds arbitrary bytes to the part reader: it must return an
// error of this package or decode, never panic or allocate beyond its limit.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := &ReaderOptions{MaxBatchBytes: 1 << 20}
		r, err := NewReader(bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSchema) && !errors.Is(err, ErrVersion) {
				t.Fatalf("NewReader: unexpected error kind: %v", err)
			}
			return
		}
		defer r.Close()
		var b Batch
		for i := 0; i < min(r.NumBatches(), 16); i++ {
			err := r.ReadBatch(i, &b)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("ReadBatch: unexpected error kind: %v", err)
				}
				continue
			}
			cfg := r.Config()
			if n := cfg.ScoreRows(b.Len()); len(b.Logits) != n*cfg.Classes*btoi(cfg.TopK == 0) || len(b.LogSumExp) != n*btoi(cfg.TopK > 0) ||
				len(b.TopKIndex) != n*cfg.TopK || len(b.SampleCount) != n*cfg.TopK*btoi(cfg.Samples > 0) {
				t.Fatalf("inconsistent batch: %d rows, %d logits, %d logsumexp", n, len(b.Logits), len(b.LogSumExp))
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzManifest feeds arbitrary bytes to ParseManifest; whatever it accepts
// must survive a JSON round trip with the same digest.
func FuzzManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSchema) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := ParseManifest(must(jsonMarshal(&m)))
		if err != nil {
			t.Fatalf("re-parse of accepted manifest: %v", err)
		}
		if again.Digest() != m.Digest() {
			t.Fatalf("digest changed in a round trip")
		}
	})
}

// FuzzRoundTrip writes random rows in a random container and reads them
// back: float32 values exactly, float16 values as f16ToF32(f32ToF16(x)).
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint8(3), uint8(1), uint64(1))
	f.Add(uint8(5), uint8(7), uint8(2), uint64(2))
	f.Add(uint8(9), uint8(1), uint8(5), uint64(3))
	names := []string{"f32", "f16-label", "topk-f32", "topk-f16", "hidden", "inputs", "one-class", "topk-all-C", "sampled", "seq-sampled"}
	fcs := []WriterOptions{{Format: FormatArrow}, {Format: FormatArrow, Compression: CompressionLZ4}, {Format: FormatParquet}}
	f.Fuzz(func(t *testing.T, which, rows, perBatch uint8, seed uint64) {
		cfg := testConfigs[names[int(which)%len(names)]]
		o := fcs[int(which)/len(names)%len(fcs)]
		o.RowsPerBatch = int(perBatch%8) + 1
		in := makeBatch(cfg, 0, int(rows%20), seed)
		// Arbitrary float bits, including NaN payloads and subnormals.
		bits := seed
		for _, v := range [][]float32{in.Logits, in.Hidden["h"], in.Inputs["image"]} {
			for i := range v {
				bits = bits*6364136223846793005 + 1442695040888963407
				v[i] = math.Float32frombits(uint32(bits >> 32))
			}
		}
		got, _ := readPart(t, writePart(t, cfg, &o, in), nil)
		want := in.Clone()
		ncfg, _ := cfg.normalize()
		if ncfg.ScoreDtype == Float16 {
			roundF16(want.Logits)
			roundF16(want.TopKLogit)
		}
		for _, h := range ncfg.Hidden {
			if h.Dtype == Float16 {
				roundF16(want.Hidden[h.Name])
			}
		}
		equalBatch(t, want, got)
	})
}

func roundF16(v []float32) {
	for i, x := range v {
		v[i] = f16ToF32(f32ToF16(x))
	}
}

var _ = fmt.Sprint
