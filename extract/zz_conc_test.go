//go:build cgo

package extract

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distill-ml/distill/internal/sharedtest"
	ort "github.com/yalue/onnxruntime_go"
)

func BenchmarkZZConc(b *testing.B) {
	requireRuntime(b)
	seq := sharedtest.Dir(b, "teachers", "seq")
	teacher := filepath.Join(seq, "stories260K.onnx")
	const T, rows, batch = 256, 512, 8
	_, win := tokenWindows(b, seq, T, rows)
	run := func(intra, conc int) float64 {
		start := time.Now()
		so, _ := ort.NewSessionOptions()
		defer so.Destroy()
		so.SetIntraOpNumThreads(intra)
		so.SetInterOpNumThreads(1)
		s, err := ort.NewDynamicAdvancedSession(teacher, []string{"input_ids"}, []string{"logits"}, so)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Destroy()
		var wg sync.WaitGroup
		next := make(chan int, rows/batch)
		for r := 0; r < rows; r += batch {
			next <- r
		}
		close(next)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in, _ := ort.NewEmptyTensor[int64](ort.NewShape(batch, T))
				defer in.Destroy()
				for r := range next {
					ids := in.GetData()
					for i := range batch {
						for p := range T {
							ids[i*T+p] = int64(win[r+i][p])
						}
					}
					outs := []ort.Value{nil}
					if err := s.Run([]ort.Value{in}, outs); err != nil {
						b.Error(err)
						return
					}
					outs[0].Destroy()
				}
			}()
		}
		wg.Wait()
		return float64(rows*T) / time.Since(start).Seconds()
	}
	run(2, 1)
	for range 3 {
		b.Logf("intra2 x1: %.0f   intra1 x2: %.0f   intra1 x1: %.0f", run(2, 1), run(1, 2), run(1, 1))
	}
}
