package formats

import (
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// TestPartWriterStreamsPerToken writes one part of 3072 per-token rows
// (T = 256, top-32 float16 log-probabilities, labels and input_ids:
// 37 KB a row, 113 MB a part before compression, as extract writes
// stories260K's) 16 windows at a time, and checks that the live heap
// after a GC is no higher in the second half of the part than in the
// first (within 32 MiB: the record batch pending, up to
// DefaultMaxBatchValue bytes, comes and goes between samples): the
// PartWriter keeps one record batch pending (and Parquet one row group's
// pages), not the part, whose 56 MB more would show. The part then reads
// back whole.
func TestPartWriterStreamsPerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 113 MB")
	}
	const T, k, batch, n = 256, 32, 16, 3072
	cfg := Config{Classes: 512, TopK: k, Positions: T, HasLabel: true, ScoreDtype: Float16, TopKLogProbs: true,
		Inputs: []TensorSpec{{Name: "input_ids", Shape: []int64{T}}}}
	cw, err := CreateCache(t.TempDir(), Manifest{Teacher: Teacher{File: "lm.onnx"}}, cfg, &WriterOptions{Format: FormatParquet})
	if err != nil {
		t.Fatal(err)
	}
	defer cw.Close()
	p, err := cw.NewPart()
	if err != nil {
		t.Fatal(err)
	}
	b := makeBatch(cfg, 0, batch, 1)
	var peak [2]int64 // live heap after a GC, in each half of the part
	for r := int64(0); r < n; r += batch {
		for i := range b.Rows {
			b.Rows[i] = r + int64(i)
		}
		if err := p.Write(b); err != nil {
			t.Fatal(err)
		}
		if r%(8*batch) == 0 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			h := &peak[2*r/n]
			*h = max(*h, int64(ms.HeapAlloc))
		}
	}
	info, err := p.Commit()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows, %d bytes; live heap at most %d MiB in the first half, %d MiB in the second", info.Rows, info.Bytes, peak[0]>>20, peak[1]>>20)
	if info.Rows != n {
		t.Fatalf("%d rows committed, want %d", info.Rows, n)
	}
	if peak[1] > peak[0]+32<<20 {
		t.Fatalf("the live heap grew from %d MiB to %d MiB while writing the second half of a part of %d per-token rows: the part is held in memory",
			peak[0]>>20, peak[1]>>20, n)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(cw.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.NumRows() != n {
		t.Fatalf("the cache reads %d rows, want %d", c.NumRows(), n)
	}
}

// TestParquetRowGroupHeap writes two uncompressed Parquet row groups of
// per-token rows (T = 256, float16 top-32: 16 MiB pending each) with the
// GC collecting at 5 % growth and a goroutine sampling the heap every
// millisecond, and checks that it never passes the level before the
// first row by more than 112 MiB. pqarrow turns each float16 value it is
// handed into a 24-byte parquet.FixedLenByteArray: for a whole row
// group's column (3.8M values) an 92 MB slice at once, which took the
// heap 153 MiB up; Writer.writeRowGroup hands it pieces of pqChunkValues
// (about 80 MiB up).
func TestParquetRowGroupHeap(t *testing.T) {
	const T, k = 256, 32
	cfg := Config{Classes: 512, TopK: k, Positions: T, HasLabel: true, ScoreDtype: Float16, TopKLogProbs: true}
	rows := 2 * DefaultRowsPerBatchFor(cfg)
	b := makeBatch(cfg, 0, rows, 1)
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	runtime.GC()
	base := heap()
	var peak int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			peak = max(peak, heap())
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var cw countWriter
	cw.w = io.Discard
	w, err := NewWriter(&cw, cfg, &WriterOptions{Format: FormatParquet, Compression: CompressionNone})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d rows, %d bytes: heap at most %d MiB above the start", rows, cw.n, (peak-base)>>20)
	if peak-base > 112<<20 {
		t.Fatalf("writing 2 row groups of %d per-token rows raised the heap by %d MiB, want < 112", rows/2, (peak-base)>>20)
	}
}
