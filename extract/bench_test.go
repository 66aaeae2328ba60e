//go:build cgo

package extract

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/sharedtest"
	ort "github.com/yalue/onnxruntime_go"
)

// BenchmarkExtractVsBare runs the project's MNIST CNN teacher over the
// 60,000 MNIST training images (uncompressed idx) twice in one process with the same batch and
// thread count: through a bare onnxruntime loop (one run at a time on the
// intra-op threads, preallocated tensors, no reading, no writing) and
// through Run (dataset reading, preprocessing, teacher, Parquet writing;
// its default streams, one 1-thread run in flight per thread). It reports
// both throughputs and their ratio (goal ≥ 0.95).
func BenchmarkExtractVsBare(b *testing.B) {
	rt := requireRuntime(b)
	const teacher = "../fixtures/teacher/mnist_cnn.onnx"
	const batch, threads = 256, 2
	// Uncompressed idx files, gunzipped once outside the timing: the
	// ratio measures the pipeline, not gzip (decoding the .gz files costs
	// about 0.4 CPU-seconds more, some 5% of this 2-core run).
	tmp := b.TempDir()
	for _, f := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"} {
		gunzip(b, filepath.Join(filepath.Dir(mnistTest(b)), f+".gz"), filepath.Join(tmp, f))
	}
	data := filepath.Join(tmp, "train-images-idx3-ubyte")
	ds, err := dataset.Open(data, nil)
	if err != nil {
		b.Fatal(err)
	}
	var all dataset.Batch
	if err := ds.Read(0, ds.Len(), &all); err != nil {
		b.Fatal(err)
	}
	ds.Close()
	pixels := all.Cols["image"]
	n := all.Len()
	for i := range pixels {
		pixels[i] /= 255
	}

	bare := func() float64 {
		so, _ := ort.NewSessionOptions()
		defer so.Destroy()
		so.SetIntraOpNumThreads(threads)
		so.SetInterOpNumThreads(1)
		in, _ := ort.NewEmptyTensor[float32](ort.NewShape(batch, 1, 28, 28))
		defer in.Destroy()
		out, _ := ort.NewEmptyTensor[float32](ort.NewShape(batch, 10))
		defer out.Destroy()
		s, err := ort.NewAdvancedSession(teacher, []string{"image"}, []string{"logits"}, []ort.Value{in}, []ort.Value{out}, so)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Destroy()
		sink := make([]float32, 0, n*10)
		start := time.Now()
		for r := 0; r+batch <= n; r += batch {
			copy(in.GetData(), pixels[r*784:(r+batch)*784])
			if err := s.Run(); err != nil {
				b.Fatal(err)
			}
			sink = append(sink, out.GetData()...)
		}
		return float64(n/batch*batch) / time.Since(start).Seconds()
	}
	extract := func() float64 {
		out := filepath.Join(b.TempDir(), "cache")
		start := time.Now()
		_, err := rt.Run(context.Background(), Options{Teacher: teacher, Data: data, Out: out, Batch: batch, Threads: threads,
			Preprocess: Preprocess{Scale: 1.0 / 255}})
		if err != nil {
			b.Fatal(err)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	bare() // warm up
	var bareRates, extRates, ratios []float64
	for b.Loop() {
		// Interleave, and report medians: the machine is shared, and a
		// pair measured back to back sees about the same load.
		br, er := bare(), extract()
		bareRates, extRates, ratios = append(bareRates, br), append(extRates, er), append(ratios, er/br)
	}
	b.ReportMetric(median(bareRates), "bare_images/s")
	b.ReportMetric(median(extRates), "extract_images/s")
	b.ReportMetric(median(ratios), "ratio")
}

var median = sharedtest.Median

func gunzip(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkExtractSeqVsBare runs stories260K over 512 TinyStories windows
// of 256 tokens (131,072 tokens) through a bare onnxruntime loop (int64
// ids, logits fetched into preallocated tensors, nothing written; session
// creation included) on 2 intra-op threads and through Run with the same
// batch and 2 threads, --topk 32 and float16 log-probabilities (reading,
// the in-graph Cast of the ids and top-k, Parquet writing; Run's default
// 2 streams: two 1-thread teacher runs in flight), and reports both
// tokens/s and their ratio (goal ≥ 0.95). Two more bare loops bound what
// Run could reach: bare_streams, the bare loop as two 1-thread runs in
// flight on one session (ratio_streams = extract / bare_streams), and
// bare_topk, the bare loop on the graph Run executes (Model.WithTopK:
// TopK, ReduceLogSumExp and ReduceMin appended, float32 ids cast inside,
// k+3 values fetched per position; topk_ceiling = bare_topk / bare).
// The teacher is so small (0.5 MFLOP per token) that per-position work
// weighs as much as the model: onnxruntime's in-graph ranking, the Go-side
// TopK when it is not in the graph (5.4 µs per position, BenchmarkTopK),
// Parquet encoding (3–4 µs), the plan (model edits, two sessions, one
// batch to learn the shapes: about 0.2 s). Figures: README "Per-token
// caches" and BENCHMARKS.md section 6.
func BenchmarkExtractSeqVsBare(b *testing.B) {
	rt := requireRuntime(b)
	seq := sharedtest.Dir(b, "teachers", "seq")
	teacher := filepath.Join(seq, "stories260K.onnx")
	const T, rows, batch, threads, k = 256, 512, 8, 2, 32
	data, win := tokenWindows(b, seq, T, rows)
	m, err := LoadModel(teacher)
	if err != nil {
		b.Fatal(err)
	}
	tm, tt, err := m.WithTopK("logits", k)
	if err != nil {
		b.Fatal(err)
	}
	topkModel, topkFetch, err := tm.WithOutputs([]string{tt.Values, tt.Indices, tt.LSE, tt.Min})
	if err != nil {
		b.Fatal(err)
	}
	// loop runs one bare pass: model bytes (nil: the teacher file, int64
	// ids) fetching outs of the given shapes, with streams goroutines
	// taking batches in turn on one session (threads − streams + 1
	// intra-op threads, as extract sets it), each with its own
	// preallocated tensors; it returns tokens/s.
	loop := func(model []byte, fetch []string, shapes [][]int64, streams int) float64 {
		start := time.Now()
		so, _ := ort.NewSessionOptions()
		defer so.Destroy()
		so.SetIntraOpNumThreads(threads - streams + 1)
		so.SetInterOpNumThreads(1)
		var s *ort.DynamicAdvancedSession
		if model == nil {
			s, err = ort.NewDynamicAdvancedSession(teacher, []string{"input_ids"}, fetch, so)
		} else {
			s, err = ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"input_ids"}, fetch, so)
		}
		if err != nil {
			b.Fatal(err)
		}
		defer s.Destroy()
		next := make(chan int, rows/batch)
		for r := 0; r+batch <= rows; r += batch {
			next <- r
		}
		close(next)
		var wg sync.WaitGroup
		for range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var in ort.Value
				var ids64 []int64
				var ids32 []float32
				if model == nil {
					t, _ := ort.NewEmptyTensor[int64](ort.NewShape(batch, T))
					in, ids64 = t, t.GetData()
				} else {
					t, _ := ort.NewEmptyTensor[float32](ort.NewShape(batch, T))
					in, ids32 = t, t.GetData()
				}
				defer in.Destroy()
				var outs []ort.Value
				var outData [][]float32
				for _, sh := range shapes {
					t, _ := ort.NewEmptyTensor[float32](ort.NewShape(sh...))
					defer t.Destroy()
					outs, outData = append(outs, t), append(outData, t.GetData())
				}
				sink := make([]float32, 0, rows*T*512/streams)
				for r := range next {
					for i := range batch {
						for p := range T {
							if ids64 != nil {
								ids64[i*T+p] = int64(win[r+i][p])
							} else {
								ids32[i*T+p] = float32(win[r+i][p])
							}
						}
					}
					if err := s.Run([]ort.Value{in}, outs); err != nil {
						b.Error(err)
						return
					}
					for _, d := range outData {
						sink = append(sink, d...)
					}
				}
			}()
		}
		wg.Wait()
		return float64(rows*T) / time.Since(start).Seconds()
	}
	logits := [][]int64{{batch, T, 512}}
	bare := func() float64 { return loop(nil, []string{"logits"}, logits, 1) }
	bareStreams := func() float64 { return loop(nil, []string{"logits"}, logits, threads) }
	bareTopK := func() float64 {
		return loop(topkModel, topkFetch, [][]int64{{batch, T, k}, {batch, T, k}, {batch, T}, {batch, T}}, 1)
	}
	extract := func() float64 {
		out := filepath.Join(b.TempDir(), "cache")
		start := time.Now()
		if _, err := rt.Run(context.Background(), Options{Teacher: teacher, Data: data, Out: out, Batch: batch, Threads: threads, TopK: 32, Dtype: "f16"}); err != nil {
			b.Fatal(err)
		}
		return float64(rows*T) / time.Since(start).Seconds()
	}
	bare() // warm up
	var bareRates, streamRates, topkRates, extRates, ratios, streamRatios, ceilings []float64
	for b.Loop() {
		br, sr, tr, er := bare(), bareStreams(), bareTopK(), extract()
		bareRates, streamRates, topkRates, extRates = append(bareRates, br), append(streamRates, sr), append(topkRates, tr), append(extRates, er)
		ratios, streamRatios, ceilings = append(ratios, er/br), append(streamRatios, er/sr), append(ceilings, tr/br)
	}
	b.ReportMetric(median(bareRates), "bare_tokens/s")
	b.ReportMetric(median(streamRates), "bare_streams_tokens/s")
	b.ReportMetric(median(topkRates), "bare_topk_tokens/s")
	b.ReportMetric(median(extRates), "extract_tokens/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(streamRatios), "ratio_streams")
	b.ReportMetric(median(ceilings), "topk_ceiling")
}
