//go:build cgo

package extract

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/distill-ml/distill/formats/dataset"
	ort "github.com/yalue/onnxruntime_go"
)

// BenchmarkExtractVsBare runs the project's MNIST CNN teacher over the
// 10,000 MNIST test images twice in one process with the same batch and
// thread count: through a bare onnxruntime loop (preallocated tensors, no
// reading, no writing: the upper bound) and through Run (dataset reading,
// preprocessing, teacher, Parquet writing). It reports both throughputs
// and their ratio (goal ≥ 0.95).
func BenchmarkExtractVsBare(b *testing.B) {
	rt := requireRuntime(b)
	const teacher = "../fixtures/teacher/mnist_cnn.onnx"
	const batch, threads = 256, 2
	data := mnistTest(b)
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
	var bareRate, extRate float64
	for b.Loop() {
		// Interleave to share the machine's noise fairly.
		bareRate += bare()
		extRate += extract()
	}
	bareRate /= float64(b.N)
	extRate /= float64(b.N)
	b.ReportMetric(bareRate, "bare_images/s")
	b.ReportMetric(extRate, "extract_images/s")
	b.ReportMetric(extRate/bareRate, "ratio")
}
