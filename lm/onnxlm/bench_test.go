package onnxlm_test

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/lm/onnxlm"
)

// decodeTime feeds batch rows of BOS (the prefill) and then steps-1 single
// tokens (the argmax of row 0, fed to every row) through a fresh session of
// m, and returns the time the steps took.
func decodeTime(b *testing.B, m lm.Model, batch, steps int) time.Duration {
	s, err := m.Start(batch)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	V := m.Info().Vocab
	ids := slices.Repeat([]int64{1}, batch)
	var mask []int64
	start := time.Now()
	for range steps {
		mask = slices.Repeat([]int64{1}, batch*(s.Past()+1))
		lg, err := s.Step(ids, 1, mask, lm.Positions(mask, batch, 1))
		if err != nil {
			b.Fatal(err)
		}
		next := argmax(lg[:V])
		for i := range ids {
			ids[i] = next
		}
	}
	return time.Since(start)
}

// BenchmarkDecode measures cached greedy decoding in onnxruntime (one
// intra-op thread): tokens/s for batch 1 and batch 16 of the models named
// in $DISTILL_BENCH_DECODE (NAME=PATH,NAME=PATH; default the stories260K
// decoder with past), BOS then $DISTILL_BENCH_DECODE_STEPS − 1 steps (127),
// the models interleaved in each of b.N rounds; the medians are reported as
// NAME-bB-tok/s, with each model's NAME-params and NAME-bytes (lm.Info).
// make bench compares an exported student against its teacher with it.
func BenchmarkDecode(b *testing.B) {
	spec := os.Getenv("DISTILL_BENCH_DECODE")
	if spec == "" {
		spec = "teacher=" + filepath.Join(sharedtest.Dir(b, "teachers", "seq"), "stories260K-kv.onnx")
	}
	steps := 128
	if v := os.Getenv("DISTILL_BENCH_DECODE_STEPS"); v != "" {
		var err error
		if steps, err = strconv.Atoi(v); err != nil || steps < 2 {
			b.Fatalf("DISTILL_BENCH_DECODE_STEPS=%q: want an integer ≥ 2", v)
		}
	}
	type entry struct {
		name string
		m    lm.Model
	}
	var models []entry
	for _, kv := range strings.Split(spec, ",") {
		name, path, ok := strings.Cut(kv, "=")
		if !ok {
			b.Fatalf("DISTILL_BENCH_DECODE: %q is not NAME=PATH", kv)
		}
		m, err := onnxlm.Open(path, &onnxlm.Options{Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if !m.Info().KVCache {
			b.Fatalf("%s: %s has no KV cache", name, path)
		}
		models = append(models, entry{name, m})
	}
	batches := []int{1, 16}
	times := map[string][]time.Duration{}
	for _, e := range models { // warm-up: the first runs allocate onnxruntime's arenas
		for _, bs := range batches {
			decodeTime(b, e.m, bs, steps)
		}
	}
	b.ResetTimer()
	for range b.N {
		for _, e := range models {
			for _, bs := range batches {
				key := fmt.Sprintf("%s-b%d", e.name, bs)
				times[key] = append(times[key], decodeTime(b, e.m, bs, steps))
			}
		}
	}
	b.StopTimer()
	for _, e := range models {
		b.ReportMetric(float64(e.m.Info().Params), e.name+"-params")
		b.ReportMetric(float64(e.m.Info().Bytes), e.name+"-bytes")
		for _, bs := range batches {
			ts := times[fmt.Sprintf("%s-b%d", e.name, bs)]
			slices.SortFunc(ts, cmp.Compare)
			med := ts[len(ts)/2]
			b.ReportMetric(float64(bs*steps)/med.Seconds(), fmt.Sprintf("%s-b%d-tok/s", e.name, bs))
		}
	}
}
