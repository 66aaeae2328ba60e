package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/distill-ml/distill/internal/store"
)

// Benchmarks: 1M rows of a 10-class teacher, written and read as one part
// in each container and codec. MB/s counts the decoded row bytes
// (8 for row + 4 per stored score value + 4 for logsumexp when top-k);
// metrics: rows/s, and bytes/sample = file size / rows. Run with
//
//	go test -run '^$' -bench . -benchtime 1x ./formats/

const (
	benchRows    = 1 << 20
	benchClasses = 10
	benchChunk   = 4096 // rows per Write call, as extract would pass them
)

var benchData = sync.OnceValue(func() []*Batch {
	// Logits like a trained classifier's: N(0, 2) noise, the true class +8.
	rng := rand.New(rand.NewPCG(7, 7))
	var out []*Batch
	for first := 0; first < benchRows; first += benchChunk {
		b := &Batch{Rows: make([]int64, benchChunk), Logits: make([]float32, benchChunk*benchClasses)}
		for i := range b.Rows {
			b.Rows[i] = int64(first + i)
			y := rng.IntN(benchClasses)
			for c := 0; c < benchClasses; c++ {
				v := rng.NormFloat64() * 2
				if c == y {
					v += 8
				}
				b.Logits[i*benchClasses+c] = float32(v)
			}
		}
		out = append(out, b)
	}
	return out
})

type benchCase struct {
	name string
	cfg  Config
	opts WriterOptions
}

func benchCases() []benchCase {
	cfgs := []struct {
		name string
		cfg  Config
	}{
		{"f32", Config{Classes: benchClasses}},
		{"f16", Config{Classes: benchClasses, ScoreDtype: Float16}},
		{"top5", Config{Classes: benchClasses, TopK: 5}},
	}
	containers := []WriterOptions{
		{Format: FormatArrow, Compression: CompressionNone},
		{Format: FormatArrow, Compression: CompressionLZ4},
		{Format: FormatArrow, Compression: CompressionZstd},
		{Format: FormatParquet, Compression: CompressionNone},
		{Format: FormatParquet, Compression: CompressionZstd},
	}
	var cs []benchCase
	for _, o := range containers {
		for _, c := range cfgs {
			cs = append(cs, benchCase{fmt.Sprintf("%s-%s/%s", o.Format, o.Compression, c.name), c.cfg, o})
		}
	}
	return cs
}

// rowBytesLogical is the decoded size of one row, for b.SetBytes.
func rowBytesLogical(cfg Config) int64 {
	if cfg.TopK > 0 {
		return 8 + int64(cfg.TopK)*8 + 4
	}
	return 8 + int64(cfg.Classes)*4
}

func writeBench(tb testing.TB, c benchCase, buf *bytes.Buffer) {
	buf.Reset()
	w, err := NewWriter(buf, c.cfg, &c.opts)
	if err != nil {
		tb.Fatal(err)
	}
	for _, b := range benchData() {
		if err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkWrite(b *testing.B) {
	benchData()
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			var buf bytes.Buffer
			b.SetBytes(benchRows * rowBytesLogical(c.cfg))
			b.ReportAllocs()
			for b.Loop() {
				writeBench(b, c, &buf)
			}
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(buf.Len())/benchRows, "bytes/sample")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	benchData()
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			var buf bytes.Buffer
			writeBench(b, c, &buf)
			data := buf.Bytes()
			b.SetBytes(benchRows * rowBytesLogical(c.cfg))
			b.ReportAllocs()
			var dst Batch
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(data), int64(len(data)), nil)
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for i := 0; i < r.NumBatches(); i++ {
					if err := r.ReadBatch(i, &dst); err != nil {
						b.Fatal(err)
					}
					rows += dst.Len()
				}
				r.Close()
				if rows != benchRows {
					b.Fatalf("read %d rows", rows)
				}
			}
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(len(data))/benchRows, "bytes/sample")
		})
	}
}

// TestBenchDataF16 keeps the benchmark honest: float16 storage of its
// logits loses at most 2^-11 relative precision.
func TestBenchDataF16(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 1M rows")
	}
	for _, x := range benchData()[0].Logits {
		y := f16ToF32(f32ToF16(x))
		if math.Abs(float64(y-x)) > math.Abs(float64(x))/2048+1e-7 {
			t.Fatalf("f16(%v) = %v", x, y)
		}
	}
}

// benchCacheCases are the containers BenchmarkReadCache reads: the
// largest file (Arrow, uncompressed) and extract's default (Parquet zstd).
var benchCacheCases = []benchCase{
	{"arrow-none/f32", Config{Classes: benchClasses}, WriterOptions{Format: FormatArrow, Compression: CompressionNone}},
	{"parquet-zstd/f32", Config{Classes: benchClasses}, WriterOptions{Format: FormatParquet, Compression: CompressionZstd}},
}

// writeBenchCache writes benchData as a cache directory of four parts and
// returns their total size.
func writeBenchCache(b *testing.B, dir string, c benchCase) (fileBytes int64) {
	cw, err := CreateCache(dir, testManifest(0, 1), c.cfg, &c.opts)
	if err != nil {
		b.Fatal(err)
	}
	defer cw.Close()
	data := benchData()
	for i := 0; i < len(data); i += len(data) / 4 {
		info, err := cw.WritePart(data[i : i+len(data)/4]...)
		if err != nil {
			b.Fatal(err)
		}
		fileBytes += info.Bytes
	}
	return fileBytes
}

// BenchmarkReadCache opens a cache directory of 1M rows in four parts and
// reads every unit, as train does once per run: Open, ReadBatch of each
// unit, Close. "hash" checks each part's sha256 on its first read (the
// default), "nohash" sets ReaderOptions.SkipHashCheck. MB/s counts decoded
// row bytes as BenchmarkRead does; file-MB/s the part files' bytes.
func BenchmarkReadCache(b *testing.B) {
	benchData()
	for _, c := range benchCacheCases {
		dir := filepath.Join(b.TempDir(), "cache")
		fileBytes := writeBenchCache(b, dir, c)
		for _, skip := range []bool{false, true} {
			name := c.name + "/hash"
			if skip {
				name = c.name + "/nohash"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(benchRows * rowBytesLogical(c.cfg))
				b.ReportAllocs()
				var dst Batch
				for b.Loop() {
					cache, err := OpenWithOptions(&ReaderOptions{SkipHashCheck: skip}, dir)
					if err != nil {
						b.Fatal(err)
					}
					rows := 0
					for u := range cache.NumBatches() {
						if err := cache.ReadBatch(u, &dst); err != nil {
							b.Fatal(err)
						}
						rows += dst.Len()
					}
					cache.Close()
					if rows != benchRows {
						b.Fatalf("read %d rows", rows)
					}
				}
				b.ReportMetric(float64(fileBytes)*float64(b.N)/b.Elapsed().Seconds()/1e6, "file-MB/s")
			})
		}
	}
}

// BenchmarkHashPart measures the check a Cache makes on a part's first
// read (size and sha256 against the manifest) over a 256 MiB file in the
// page cache; ns/GB is the cost per 10⁹ bytes hashed.
func BenchmarkHashPart(b *testing.B) {
	path := filepath.Join(b.TempDir(), "part-00000.arrow")
	data := make([]byte, 256<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	info := PartInfo{File: filepath.Base(path), Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := checkPartFile(store.MustDir(filepath.Dir(path)), info); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(data))*1e9, "ns/GB")
}
