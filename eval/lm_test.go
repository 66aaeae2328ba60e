package eval_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/lm"
)

// lmWant is a float64 evaluation of the formulas over windows.
type lmWant struct {
	tokens                 int64
	nll, acc, agree, kl    float64
	ece                    float64
	agreeN, klN, correct   int64
	binN                   [eval.ECEBins]int64
	binConf, binAcc        [eval.ECEBins]float64
	sumNLL, sumKL, agreeOK float64
}

// teacherPos is one position's teacher: dense p over V, or the buckets of
// top-k / sampled ids with their exact p and the rest.
type teacherPos struct {
	top1 int
	ids  []int     // the cached (distinct) ids; nil = dense
	p    []float64 // dense [V], or per id
}

func (w *lmWant) add(m *fixtures.Bigram, ids []int64, labels []int64, teach []teacherPos) {
	T := len(ids)
	for t := range T {
		logq := make([]float64, m.V)
		mx, arg := math.Inf(-1), 0
		for c := range m.V {
			logq[c] = m.Logit(int(ids[t]), t, c)
			if logq[c] > mx {
				mx, arg = logq[c], c
			}
		}
		var z float64
		for _, v := range logq {
			z += math.Exp(v - mx)
		}
		for c := range logq {
			logq[c] -= mx + math.Log(z)
		}
		y := int(labels[t])
		w.tokens++
		w.sumNLL -= logq[y]
		if arg == y {
			w.correct++
		}
		conf := math.Exp(logq[arg])
		b := min(eval.ECEBins-1, int(math.Ceil(conf*eval.ECEBins))-1)
		w.binN[b]++
		w.binConf[b] += conf
		if arg == y {
			w.binAcc[b]++
		}
		if teach == nil {
			continue
		}
		tp := teach[t]
		w.agreeN++
		if tp.top1 == arg {
			w.agreeOK++
		}
		var kl float64
		if tp.ids == nil {
			for c, p := range tp.p {
				kl += p * (math.Log(p) - logq[c])
			}
		} else {
			var pIn, qIn float64
			for j, c := range tp.ids {
				kl += tp.p[j] * (math.Log(tp.p[j]) - logq[c])
				pIn += tp.p[j]
				qIn += math.Exp(logq[c])
			}
			kl += (1 - pIn) * (math.Log(1-pIn) - math.Log(1-qIn))
		}
		w.sumKL += kl
		w.klN++
	}
}

func (w *lmWant) check(t *testing.T, res *eval.Result) {
	t.Helper()
	near := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil {
			t.Errorf("%s missing", name)
		} else if math.Abs(*got-want) > 1e-6*max(1, math.Abs(want)) {
			t.Errorf("%s %.9g, formula %.9g", name, *got, want)
		}
	}
	if res.Tokens != w.tokens {
		t.Errorf("tokens %d, want %d", res.Tokens, w.tokens)
	}
	n := float64(w.tokens)
	near("nll", res.NLL, w.sumNLL/n)
	near("perplexity", res.Perplexity, math.Exp(w.sumNLL/n))
	near("accuracy", res.Accuracy, float64(w.correct)/n)
	if res.Errors == nil || *res.Errors != w.tokens-w.correct {
		t.Errorf("errors %v, want %d", res.Errors, w.tokens-w.correct)
	}
	var ece float64
	for b := range eval.ECEBins {
		if w.binN[b] > 0 {
			nb := float64(w.binN[b])
			ece += nb / n * math.Abs(w.binAcc[b]/nb-w.binConf[b]/nb)
		}
	}
	near("ece", res.ECE, ece)
	if res.ECEReference != "labels" || res.Confusion != nil || res.PerClass != nil {
		t.Errorf("ece reference %q, confusion %v, per class %v: want labels and no tables", res.ECEReference, res.Confusion != nil, res.PerClass != nil)
	}
	if w.agreeN == 0 {
		if res.Agreement != nil || res.KL != nil {
			t.Errorf("agreement %v, KL %v without a teacher", res.Agreement, res.KL)
		}
		return
	}
	near("agreement", res.Agreement, w.agreeOK/float64(w.agreeN))
	near("kl", res.KL, w.sumKL/float64(w.klN))
	if res.Teacher == nil || res.Teacher.Matched != w.agreeN {
		t.Errorf("teacher %+v, want %d positions matched", res.Teacher, w.agreeN)
	}
}

// windows reads every window of a token dataset.
func windows(t *testing.T, path string) (rows []int64, win [][]int64, val []bool) {
	t.Helper()
	b := fixtures.ReadRows(t, path, &dataset.Options{Label: dataset.NoLabel}, 1<<20)
	meta, err := dataset.ReadTokensMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	W := meta.SeqLen + 1
	ids := b.Cols[dataset.ColInputIDs]
	for i, r := range b.Rows {
		w := make([]int64, W)
		for j := range W {
			w[j] = int64(ids[i*W+j])
		}
		rows, win = append(rows, r), append(win, w)
	}
	if meta.Val == "column" {
		v := fixtures.ReadRows(t, path, &dataset.Options{Label: dataset.NoLabel, Features: []string{dataset.ColVal}}, 1<<20)
		for _, x := range v.Cols[dataset.DefaultFeatureName] {
			val = append(val, x != 0)
		}
	}
	return rows, win, val
}

// cacheTeacher reads a per-token cache's teachers, window by window.
func cacheTeacher(t *testing.T, dir string) map[int64][]teacherPos {
	t.Helper()
	c, err := formats.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := c.Config()
	T, V, k := cfg.Positions, cfg.Classes, cfg.TopK
	out := map[int64][]teacherPos{}
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range b.Rows {
			for q := i * T; q < (i+1)*T; q++ {
				var tp teacherPos
				if k == 0 {
					s := b.Logits[q*V : (q+1)*V]
					tp.p, tp.top1 = fixtures.Softmax(s), fixtures.Argmax(s)
				} else {
					best := math.Inf(-1)
					for j := q * k; j < (q+1)*k; j++ {
						if cfg.Samples > 0 && b.SampleCount[j] == 0 {
							continue
						}
						id := int(b.TopKIndex[j])
						tp.ids = append(tp.ids, id)
						tp.p = append(tp.p, math.Exp(float64(b.TopKLogit[j])-float64(b.LogSumExp[q])))
						if v := float64(b.TopKLogit[j]); v > best {
							best, tp.top1 = v, id
						}
					}
				}
				out[r] = append(out[r], tp)
			}
		}
	}
	return out
}

func runLM(t *testing.T, m lm.Model, data, teacherCache string, do *eval.LMDataOptions, o *eval.LMOptions) *eval.Result {
	t.Helper()
	d, err := eval.OpenLMData(data, teacherCache, do)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := eval.RunLM(context.Background(), m, d, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunLMTokens(t *testing.T) {
	const n, T, V = 11, 12, 7
	data := fixtures.WriteTokenData(t, filepath.Join(t.TempDir(), "tokens.parquet"), n, T, V)
	m := fixtures.NewBigram(V)
	var done []int64
	res := runLM(t, m, data, "", nil, &eval.LMOptions{Options: eval.Options{Name: "bi", Batch: 4, ToolVersion: "test",
		Progress: func(d, total int64) {
			if total != n {
				t.Errorf("progress total %d", total)
			}
			done = append(done, d)
		}}})
	_, win, _ := windows(t, data)
	var w lmWant
	for _, x := range win {
		w.add(m, x[:T], x[1:], nil)
	}
	w.check(t, res)
	if res.Rows != n || res.Classes != V || res.Name != "bi" || res.Tool != "test" || res.Data.Kind != "tokens" || res.Data.Split != "all" ||
		res.LM == nil || res.LM.SeqLen != T || res.LM.Vocab != V || !res.LM.KVCache || res.LM.Kind != lm.KindONNXCache ||
		res.Model.Params != V*V || res.Model.FileBytes != 1234 || res.LM.Prefill != nil || res.LM.Decode != nil {
		t.Errorf("result %+v, lm %+v", res, res.LM)
	}
	if !slices.Equal(done, []int64{4, 8, 11}) {
		t.Errorf("progress %v", done)
	}
	if m.Open != 0 || m.Started != 3 {
		t.Errorf("%d sessions open, %d started; want 0 and 3 (windows in batches of 4)", m.Open, m.Started)
	}
	var sb strings.Builder
	if err := res.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"perplexity", fmt.Sprintf("%.3f", *res.Perplexity), "next-token accuracy", "no teacher scores"} {
		if !strings.Contains(sb.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, sb.String())
		}
	}

	// --rows bounds the windows: the first 5.
	res = runLM(t, m, data, "", &eval.LMDataOptions{Rows: 5}, &eval.LMOptions{Options: eval.Options{Batch: 3}})
	w = lmWant{}
	for _, x := range win[:5] {
		w.add(m, x[:T], x[1:], nil)
	}
	w.check(t, res)
	if res.Rows != 5 || res.Data.Rows != 5 {
		t.Errorf("rows %d, data rows %d: want 5", res.Rows, res.Data.Rows)
	}
}

func TestRunLMSplit(t *testing.T) {
	const n, T, V = 12, 6, 5
	data := fixtures.WriteTokenDataOpts(t, filepath.Join(t.TempDir(), "tokens.parquet"), n, T, V, &dataset.TokensOptions{ValEvery: 3})
	_, win, val := windows(t, data)
	if len(val) != n {
		t.Fatalf("%d val marks for %d windows", len(val), n)
	}
	m := fixtures.NewBigram(V)
	for _, split := range []string{"", "val", "train", "all"} {
		res := runLM(t, m, data, "", &eval.LMDataOptions{Split: split}, &eval.LMOptions{Options: eval.Options{Batch: 2}})
		var w lmWant
		for i, x := range win {
			if split == "all" || val[i] == (split != "train") {
				w.add(m, x[:T], x[1:], nil)
			}
		}
		w.check(t, res)
		want := split
		if want == "" {
			want = "val"
		}
		if res.Data.Split != want || res.Rows != w.tokens/T {
			t.Errorf("split %q: data split %q, %d windows, want %q and %d", split, res.Data.Split, res.Rows, want, w.tokens/T)
		}
	}
	if _, err := eval.OpenLMData(data, "", &eval.LMDataOptions{Split: "test"}); !errors.Is(err, eval.ErrOption) {
		t.Errorf("--split test: %v, want an option error", err)
	}
	plain := fixtures.WriteTokenData(t, filepath.Join(t.TempDir(), "plain.parquet"), 4, T, V)
	if _, err := eval.OpenLMData(plain, "", &eval.LMDataOptions{Split: "val"}); !errors.Is(err, eval.ErrOption) || !strings.Contains(err.Error(), "--split all") {
		t.Errorf("--split val of a file without validation windows: %v", err)
	}
}

func TestRunLMCache(t *testing.T) {
	const n, T, V = 9, 8, 6
	tmp := t.TempDir()
	data := fixtures.WriteTokenData(t, filepath.Join(tmp, "tokens.parquet"), n, T, V)
	rows, win, _ := windows(t, data)
	m := fixtures.NewBigram(V)
	for _, tc := range []struct {
		name    string
		keep    bool
		targets formats.Config
	}{
		{"dense-kept", true, formats.Config{}},
		{"dense-from-dataset", false, formats.Config{}},
		{"topk", true, formats.Config{TopK: 3}},
		{"sampled", false, formats.Config{Samples: 4, SampleSeed: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := fixtures.WriteTokenCacheTargets(t, filepath.Join(t.TempDir(), "cache"), data, tc.keep, tc.targets)
			teach := cacheTeacher(t, cache)
			var w lmWant
			for i, x := range win {
				w.add(m, x[:T], x[1:], teach[rows[i]])
			}
			for _, viaTeacher := range []bool{false, true} {
				var res *eval.Result
				if viaTeacher { // --data tokens --teacher-cache cache
					res = runLM(t, m, data, cache, nil, &eval.LMOptions{Options: eval.Options{Batch: 3}})
				} else {
					res = runLM(t, m, cache, "", nil, &eval.LMOptions{Options: eval.Options{Batch: 3}})
				}
				w.check(t, res)
				if res.Data.Kind != "cache" || res.Rows != n || res.Teacher.TopK != tc.targets.TopK+min(tc.targets.Samples, V) || res.Teacher.Samples != tc.targets.Samples {
					t.Errorf("data %+v teacher %+v", res.Data, res.Teacher)
				}
				if (res.Data.TokensFrom != "") != (!tc.keep || viaTeacher) {
					t.Errorf("keep input %v, via --teacher-cache %v: tokens read from %q", tc.keep, viaTeacher, res.Data.TokensFrom)
				}
			}
			// The first 5 windows (--rows), across the cache's units of 4.
			res := runLM(t, m, cache, "", &eval.LMDataOptions{Rows: 5}, &eval.LMOptions{Options: eval.Options{Batch: 3}})
			w = lmWant{}
			for i, x := range win[:5] {
				w.add(m, x[:T], x[1:], teach[rows[i]])
			}
			w.check(t, res)
		})
	}
}

func TestRunLMLatency(t *testing.T) {
	const n, T, V = 3, 10, 5
	data := fixtures.WriteTokenData(t, filepath.Join(t.TempDir(), "tokens.parquet"), n, T, V)
	m := fixtures.NewBigram(V)
	res := runLM(t, m, data, "", nil, &eval.LMOptions{Options: eval.Options{Batch: 2, BenchTime: time.Millisecond},
		DecodePrompt: 5, DecodeSteps: 7, DecodeBatch: []int{1, 4}})
	p := res.LM.Prefill
	if p == nil || p.Batch != 1 || p.Tokens != T || p.Past != 0 || p.Calls < 10 || !(p.P50 > 0) || p.P99 < p.P50 ||
		math.Abs(p.TokensPerSec-T/(p.P50/1e3)) > 1e-6*p.TokensPerSec {
		t.Errorf("prefill %+v", p)
	}
	if len(res.LM.Decode) != 2 {
		t.Fatalf("decode %+v, want batches 1 and 4", res.LM.Decode)
	}
	for i, b := range []int{1, 4} {
		l := res.LM.Decode[i]
		if l.Batch != b || l.Past != 5 || l.Tokens != 1 || l.Steps != 7 || l.Calls < 14 || l.Calls%7 != 0 || !(l.P50 > 0) ||
			math.Abs(l.TokensPerSec-float64(b)/(l.P50/1e3)) > 1e-6*l.TokensPerSec {
			t.Errorf("decode batch %d: %+v", b, l)
		}
	}
	if m.MaxPast != 12 || m.Open != 0 {
		t.Errorf("longest past %d (want prompt 5 + 7 steps = 12), %d sessions open", m.MaxPast, m.Open)
	}
	var sb strings.Builder
	if err := res.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"prefill", "decode batch 1", "decode batch 4", "KV cache"} {
		if !strings.Contains(sb.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, sb.String())
		}
	}

	// Too long a decoding run for the model's positions.
	m.MaxPos = 11
	d, err := eval.OpenLMData(data, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = eval.RunLM(context.Background(), m, d, &eval.LMOptions{Options: eval.Options{BenchTime: time.Millisecond}, DecodePrompt: 5, DecodeSteps: 7})
	if !errors.Is(err, eval.ErrOption) || !strings.Contains(err.Error(), "--decode-steps 7") {
		t.Errorf("prompt 5 + 7 steps on 11 positions: %v", err)
	}
	m.MaxPos = 9 // windows of 10
	if _, err = eval.RunLM(context.Background(), m, d, nil); err == nil || !strings.Contains(err.Error(), "--seq-len") {
		t.Errorf("windows of 10 on 9 positions: %v", err)
	}
}

func TestRunLMErrors(t *testing.T) {
	const T, V = 6, 5
	tmp := t.TempDir()
	data := fixtures.WriteTokenData(t, filepath.Join(tmp, "tokens.parquet"), 4, T, V)
	// A model of another vocabulary.
	d, err := eval.OpenLMData(data, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := eval.RunLM(context.Background(), fixtures.NewBigram(V+1), d, nil); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("vocabulary 6 on data of 5: %v", err)
	}
	// NaN logits: counted, out of the NLL, a warning.
	m := fixtures.NewBigram(V)
	m.NaN = 0
	var warned []string
	res := runLM(t, m, data, "", nil, &eval.LMOptions{Options: eval.Options{Warn: func(s string) { warned = append(warned, s) }}})
	_, win, _ := windows(t, data)
	var nan int64
	for _, x := range win {
		for _, v := range x[:T] {
			if v == 0 {
				nan++
			}
		}
	}
	if nan == 0 || res.NonFinite != nan || res.Tokens != int64(4*T)-nan || len(warned) != 1 {
		t.Errorf("%d NaN positions: non-finite %d, tokens %d, warnings %q", nan, res.NonFinite, res.Tokens, warned)
	}
	// Not a token dataset, a per-sample cache, a cache with --teacher-cache.
	rows, x, labels, logits := fixtures.ClassData(8, 1)
	cls := fixtures.WriteClassCache(t, filepath.Join(tmp, "cls"), rows, x, labels, logits, 0)
	if _, err := eval.OpenLMData(cls, "", nil); err == nil || !strings.Contains(err.Error(), "per-sample") {
		t.Errorf("a per-sample cache: %v", err)
	}
	if _, err := eval.OpenLMData(cls, cls, nil); !errors.Is(err, eval.ErrOption) {
		t.Errorf("a cache with --teacher-cache: %v", err)
	}
	if _, err := eval.OpenLMData(filepath.Join(fixtures.Dir(), "tiny", "x4.npy"), "", nil); err == nil || !strings.Contains(err.Error(), "distill data text") {
		t.Errorf("a plain dataset: %v", err)
	}
}
