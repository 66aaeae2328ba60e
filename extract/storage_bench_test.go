//go:build cgo

package extract

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/internal/sharedtest"
)

// BenchmarkSeqTargetStorage extracts stories260K over 200 TinyStories
// windows of 256 tokens (51,200 positions) with each kind of per-token
// target, Parquet zstd, and reports for each:
//
//   - B/token: the part files' bytes per cached token;
//   - tail_err_mean, tail_err_max (sparse forms): |m̂ − m| per position,
//     where m = Σ_{c∉K} p_c is the teacher's true mass outside the kept
//     ids K (from a dense float32 cache of the same windows) and
//     m̂ = 1 − Σ_{c∈K} exp(t_c − lse) is what the cache gives;
//   - kl: mean over positions of KL(p ‖ p̂) in nats, p̂ being what the
//     sparse form reconstructs: exp(t_c − lse) on the kept ids and the
//     rest m̂ spread evenly over the other V − |K| ids (clamped at 1e-12
//     when m̂ ≤ 0);
//   - distinct (sampled): distinct ids kept per position.
//
// Measured here (200×256 positions, Parquet zstd): see README "Bytes per
// token".
func BenchmarkSeqTargetStorage(b *testing.B) {
	rt := requireRuntime(b)
	seq := sharedtest.Dir(b, "teachers", "seq")
	teacher := filepath.Join(seq, "stories260K.onnx")
	const T, rows, V = 256, 200, 512
	data, _ := tokenWindows(b, seq, T, rows)
	extract := func(b *testing.B, o Options) (dir string, bytesPerToken float64) {
		o.Teacher, o.Data, o.Out, o.Batch, o.Threads = teacher, data, filepath.Join(b.TempDir(), "cache"), 8, 2
		if _, err := rt.Run(context.Background(), o); err != nil {
			b.Fatal(err)
		}
		ents, err := os.ReadDir(o.Out)
		if err != nil {
			b.Fatal(err)
		}
		var size int64
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".parquet") {
				fi, err := e.Info()
				if err != nil {
					b.Fatal(err)
				}
				size += fi.Size()
			}
		}
		return o.Out, float64(size) / float64(rows*T)
	}
	refDir, _ := extract(b, Options{})
	ref := readJoined(b, refDir)
	cases := []struct {
		name string
		o    Options
	}{
		{"dense-f32", Options{}},
		{"dense-f16", Options{Dtype: "f16"}},
		{"top32-f32", Options{TopK: 32}},
		{"top32-f16", Options{TopK: 32, Dtype: "f16"}},
		{"sampled32-f16", Options{Samples: 32, Dtype: "f16"}},
		{"sampled64-f16", Options{Samples: 64, Dtype: "f16"}},
		{"sampled32-tau2-f16", Options{Samples: 32, SampleTemperature: 2, Dtype: "f16"}},
		{"sampled48-tau1.5-f16", Options{Samples: 48, SampleTemperature: 1.5, Dtype: "f16"}},
		{"sampled64-tau1.25-f16", Options{Samples: 64, SampleTemperature: 1.25, Dtype: "f16"}},
		{"sampled128-f16", Options{Samples: 128, Dtype: "f16"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var dir string
			var bpt float64
			for b.Loop() {
				dir, bpt = extract(b, tc.o)
			}
			b.ReportMetric(bpt, "B/token")
			if tc.o.TopK == 0 && tc.o.Samples == 0 {
				return
			}
			got := readJoined(b, dir)
			k := len(got.TopKIndex) / (rows * T)
			var errSum, errMax, kl, distinct float64
			p := make([]float64, V)
			for q := range rows * T {
				lse := float64(got.LogSumExp[q])
				logits := ref.Logits[q*V : (q+1)*V]
				var z float64
				mx := math.Inf(-1)
				for _, v := range logits {
					mx = math.Max(mx, float64(v))
				}
				for c, v := range logits {
					p[c] = math.Exp(float64(v) - mx)
					z += p[c]
				}
				kept := map[int32]float64{}
				for j := range k {
					if got.SampleCount != nil && got.SampleCount[q*k+j] == 0 {
						continue
					}
					kept[got.TopKIndex[q*k+j]] = math.Exp(float64(got.TopKLogit[q*k+j]) - lse)
				}
				trueTail, tail := 1.0, 1.0
				for c, pc := range kept {
					trueTail -= p[c] / z
					tail -= pc
				}
				e := math.Abs(tail - trueTail)
				errSum, errMax = errSum+e, math.Max(errMax, e)
				rest := math.Max(tail, 1e-12) / float64(V-len(kept))
				for c := range V {
					pc := p[c] / z
					if pc == 0 {
						continue
					}
					qc, ok := kept[int32(c)]
					if !ok {
						qc = rest
					}
					kl += pc * (math.Log(pc) - math.Log(qc))
				}
				distinct += float64(len(kept))
			}
			n := float64(rows * T)
			b.ReportMetric(errSum/n, "tail_err_mean")
			b.ReportMetric(errMax, "tail_err_max")
			b.ReportMetric(kl/n, "kl")
			b.ReportMetric(distinct/n, "distinct")
		})
	}
}
