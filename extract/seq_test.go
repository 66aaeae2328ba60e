//go:build cgo

package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// tokenWindows encodes the first stories of TinyStories with tok512 into
// one stream and cuts rows windows of T+1 ids, written as a .npy.
func tokenWindows(t testing.TB, seq string, T, rows int) (string, [][]int) {
	t.Helper()
	tok, _, err := tokenizer.Load(filepath.Join(seq, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(seq, "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var stream []int
	for _, doc := range strings.Split(string(text), "\n\n") {
		ids, _ := tok.Encode(doc, true)
		stream = append(stream, ids...)
		if len(stream) >= rows*(T+1) {
			break
		}
	}
	var win [][]int
	var x []float32
	for r := range rows {
		w := stream[r*(T+1) : (r+1)*(T+1)]
		win = append(win, w)
		for _, id := range w {
			x = append(x, float32(id))
		}
	}
	path := filepath.Join(t.TempDir(), "windows.npy")
	if err := dataset.WriteNPYFile(path, []int{rows, T + 1}, x); err != nil {
		t.Fatal(err)
	}
	return path, win
}

// TestExtractSequence caches stories260K's per-token targets on real
// TinyStories windows: logits [T, 512] per row, the next-token labels, a
// hidden state and an attention map with their per-window shapes; a
// top-k cache of the same windows holds exactly the top-k of the dense
// one at every position; and the teacher's NLL on the windows is that of
// a good small model.
func TestExtractSequence(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	const T, rows = 32, 24
	data, win := tokenWindows(t, seq, T, rows)
	dense := filepath.Join(t.TempDir(), "dense")
	res, err := rt.Run(context.Background(), Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: data, Out: dense,
		Batch: 8, Threads: 1, Hidden: []string{"hidden_states.1", "attentions.0"}, KeepInput: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != rows {
		t.Fatalf("%d rows", res.Rows)
	}
	c, err := formats.Open(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := c.Config()
	if cfg.Positions != T || cfg.Classes != 512 || !cfg.HasLabel || len(cfg.Hidden) != 2 ||
		!slices.Equal(cfg.Hidden[0].Shape, []int64{T, 64}) || !slices.Equal(cfg.Hidden[1].Shape, []int64{8, T, T}) ||
		!slices.Equal(cfg.Inputs[0].Shape, []int64{T}) {
		t.Fatalf("config %+v", cfg)
	}
	var nll float64
	var right, n int
	var all []float32
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for r := range b.Len() {
			w := win[b.Rows[r]]
			for p := range T {
				if got := b.Labels[r*T+p]; got != int64(w[p+1]) {
					t.Fatalf("row %d position %d: label %d, want the next token %d", b.Rows[r], p, got, w[p+1])
				}
				if got := b.Inputs["input_ids"][r*T+p]; got != float32(w[p]) {
					t.Fatalf("row %d position %d: input %v, want %d", b.Rows[r], p, got, w[p])
				}
				s := b.Logits[(r*T+p)*512 : (r*T+p+1)*512]
				nll += formats.LogSumExp(s) - float64(s[w[p+1]])
				if argmax(s) == w[p+1] {
					right++
				}
				n++
			}
			// Attention rows are causal softmaxes: each sums to 1.
			att := b.Hidden["attentions.0"][r*8*T*T : (r+1)*8*T*T]
			for q := range 8 * T {
				var sum float64
				for _, v := range att[q*T : (q+1)*T] {
					sum += float64(v)
				}
				if math.Abs(sum-1) > 1e-4 {
					t.Fatalf("attention row %d sums to %v", q, sum)
				}
			}
		}
		all = append(all, b.Logits...)
	}
	nll /= float64(n)
	// The README measures 1.559 nats/token on 512-token windows; 32-token
	// windows see less context, so a little more.
	if nll < 1.4 || nll > 2.6 || float64(right)/float64(n) < 0.4 {
		t.Errorf("teacher NLL %.3f nats/token, top-1 %.1f%% on %d tokens", nll, 100*float64(right)/float64(n), n)
	}
	t.Logf("stories260K on %d TinyStories windows of %d: NLL %.3f nats/token, next-token accuracy %.1f%%", rows, T, nll, 100*float64(right)/float64(n))

	topk := filepath.Join(t.TempDir(), "top8")
	if _, err := rt.Run(context.Background(), Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: data, Out: topk, Batch: 5, Threads: 1, TopK: 8}); err != nil {
		t.Fatal(err)
	}
	ct, err := formats.Open(topk)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	idx, val := make([]int32, 8), make([]float32, 8)
	pos := 0
	for b, err := range ct.All() {
		if err != nil {
			t.Fatal(err)
		}
		for q := range b.Len() * T {
			lse := formats.TopK(idx, val, all[(pos+q)*512:(pos+q+1)*512])
			if !slices.Equal(b.TopKIndex[q*8:(q+1)*8], idx) || math.Abs(float64(b.LogSumExp[q]-lse)) > 1e-4 {
				t.Fatalf("position %d: top-8 %v lse %v, want %v %v", pos+q, b.TopKIndex[q*8:(q+1)*8], b.LogSumExp[q], idx, lse)
			}
		}
		pos += b.Len() * T
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestExtractSequenceErrors: preprocessing flags on token ids, windows
// longer than the teacher's context (stories260K's RoPE table holds 512),
// and a dataset of floats (not token ids) are refused with the reason.
func TestExtractSequenceErrors(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	short, _ := tokenWindows(t, seq, 8, 4)
	long, _ := tokenWindows(t, seq, 600, 1)
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: short, Preprocess: Preprocess{Scale: 2}}, "do not apply to token ids"},
		{Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: long}, "windows of 600 tokens: a teacher with learned or tabled positions takes at most its context length"},
		{Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: tiny + "x4.npy"}, "is not a token id of the teacher's 512-token vocabulary"},
	} {
		tc.o.Out = filepath.Join(t.TempDir(), "c")
		_, err := rt.Run(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestExtractCharTeacher caches the character-level GPT on
// tinyshakespeare windows (its vocabulary is vocab.json, a character list)
// and checks its held-out quality is a character model's (README: 1.93
// nats/char on the last 10%; these windows are from the start, seen in
// training, so a little better).
func TestExtractCharTeacher(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	tok, _, err := tokenizer.Load(filepath.Join(seq, "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(seq, "tinyshakespeare.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode(string(text[:20000]), false)
	if err != nil {
		t.Fatal(err)
	}
	const T, rows = 64, 16
	var x []float32
	for _, id := range ids[:rows*(T+1)] {
		x = append(x, float32(id))
	}
	data := filepath.Join(t.TempDir(), "chars.npy")
	if err := dataset.WriteNPYFile(data, []int{rows, T + 1}, x); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "c")
	if _, err := rt.Run(context.Background(), Options{Teacher: filepath.Join(seq, "char_teacher.onnx"), Data: data, Out: out, Threads: 1, TopK: 5}); err != nil {
		t.Fatal(err)
	}
	c, err := formats.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cfg := c.Config(); cfg.Classes != 65 || cfg.Positions != T || cfg.TopK != 5 {
		t.Fatalf("config %+v", cfg)
	}
	var nll float64
	var n int
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for q, y := range b.Labels {
			// The label's log-probability, when it is in the top 5.
			for j := range 5 {
				if int64(b.TopKIndex[q*5+j]) == y {
					nll += float64(b.LogSumExp[q] - b.TopKLogit[q*5+j])
					n++
				}
			}
		}
	}
	if frac := float64(n) / float64(rows*T); frac < 0.6 || nll/float64(n) > 2 {
		t.Errorf("next char in the top 5 at %.0f%% of positions, NLL there %.3f", 100*frac, nll/float64(n))
	}
}

// TestExtractSampled caches 32 draws per position from stories260K and
// checks that the draws do not depend on batch, part or shard boundaries,
// that each holds the teacher's logits of the drawn ids (against a dense
// cache) and S draws in all, and how many distinct ids that keeps.
func TestExtractSampled(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	const T, rows, S = 32, 12, 32
	data, _ := tokenWindows(t, seq, T, rows)
	teacher := filepath.Join(seq, "stories260K.onnx")
	a := filepath.Join(t.TempDir(), "a")
	if _, err := rt.Run(context.Background(), Options{Teacher: teacher, Data: data, Out: a, Batch: 5, Threads: 1, Samples: S, SampleTemperature: 1, SampleSeed: 7}); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "b")
	for i := range 2 {
		if _, err := rt.Run(context.Background(), Options{Teacher: teacher, Data: data, Out: b, Batch: 3, PartRows: 4, Threads: 1,
			Samples: S, SampleSeed: 7, ShardIndex: i, ShardCount: 2}); err != nil {
			t.Fatal(err)
		}
	}
	dense := filepath.Join(t.TempDir(), "dense")
	if _, err := rt.Run(context.Background(), Options{Teacher: teacher, Data: data, Out: dense, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	ga, gb, gd := readJoined(t, a), readJoined(t, b), readJoined(t, dense)
	if !slices.Equal(ga.Rows, gb.Rows) || !slices.Equal(ga.TopKIndex, gb.TopKIndex) || !slices.Equal(ga.SampleCount, gb.SampleCount) {
		t.Fatal("the draws depend on batch, part or shard boundaries")
	}
	distinct := 0
	for q := range rows * T {
		var sum int32
		for j := range S {
			n := ga.SampleCount[q*S+j]
			sum += n
			if n > 0 {
				distinct++
				if got, want := ga.TopKLogit[q*S+j], gd.Logits[q*512+int(ga.TopKIndex[q*S+j])]; math.Abs(float64(got-want)) > 1e-5 {
					t.Fatalf("position %d: logit %v, dense %v", q, got, want)
				}
			}
		}
		if sum != S {
			t.Fatalf("position %d: %d draws", q, sum)
		}
	}
	t.Logf("%d draws per position keep %.1f distinct ids", S, float64(distinct)/float64(rows*T))
}

// TestSequenceCacheInDuckDB: DuckDB computes, in SQL from the Parquet
// parts alone (scripts/node/duckdb_nll.mjs), the teacher's mean next-token
// NLL and top-1 accuracy of a dense per-token cache; they equal Go's
// figures from the same cache. Without node or its packages the test
// skips, except under CI, where make test provides them.
func TestSequenceCacheInDuckDB(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	duckdb := duckDBScript(t)
	const T, rows = 32, 24
	data, _ := tokenWindows(t, seq, T, rows)
	out := filepath.Join(t.TempDir(), "dense")
	if _, err := rt.Run(context.Background(), Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: data, Out: out, Threads: 1, Dtype: "f16"}); err != nil {
		t.Fatal(err)
	}
	c, err := formats.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	var nll float64
	var right, n int
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for q, y := range b.Labels {
			s := b.Logits[q*512 : (q+1)*512]
			nll += formats.LogSumExp(s) - float64(s[y])
			if argmax(s) == int(y) {
				right++
			}
			n++
		}
	}
	c.Close()
	var got struct {
		Reader    string  `json:"reader"`
		Positions int     `json:"positions"`
		NLL       float64 `json:"nll"`
		Top1      float64 `json:"top1"`
	}
	duckdb(&got, "duckdb_nll.mjs", out, fmt.Sprint(T), "512")
	wantNLL, wantTop1 := nll/float64(n), float64(right)/float64(n)
	if got.Positions != n || math.Abs(got.NLL-wantNLL) > 1e-6 || math.Abs(got.Top1-wantTop1) > 1e-12 {
		t.Errorf("%s: %d positions, NLL %.8f, top-1 %.6f; Go: %d, %.8f, %.6f", got.Reader, got.Positions, got.NLL, got.Top1, n, wantNLL, wantTop1)
	}
	t.Logf("%s: NLL %.6f nats/token, top-1 %.4f over %d positions, as Go", got.Reader, got.NLL, got.Top1, got.Positions)
}

// duckDBScript returns a function that runs scripts/node/NAME with args
// and decodes its JSON output into v. Without node or @duckdb/node-api
// the test skips, except under CI, where make test provides them.
func duckDBScript(t *testing.T) func(v any, name string, args ...string) {
	node, err := exec.LookPath("node")
	modules := os.Getenv("DISTILL_NODE_MODULES")
	if modules == "" {
		modules, _ = filepath.Abs("../.cache/node/node_modules")
	}
	if _, statErr := os.Stat(filepath.Join(modules, "@duckdb", "node-api")); err != nil || statErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and @duckdb/node-api are required in CI (make setup-node): %v %v", err, statErr)
		}
		t.Skipf("node or @duckdb/node-api missing (make setup-node): %v %v", err, statErr)
	}
	return func(v any, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(node, append([]string{filepath.Join("..", "scripts", "node", name)}, args...)...)
		cmd.Env = append(os.Environ(), "DISTILL_NODE_MODULES="+modules)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		js, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		if err := json.Unmarshal(js, v); err != nil {
			t.Fatalf("%s output %q: %v", name, js, err)
		}
	}
}

// TestSampledCacheInDuckDB: DuckDB slices each position's entries out of
// a sampled cache's ragged lists as README says (scripts/node/
// duckdb_sampled.mjs) and finds, in SQL alone, the same share of
// positions whose next token was drawn and the same drawn mass as Go, and
// S draws at every position.
func TestSampledCacheInDuckDB(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	duckdb := duckDBScript(t)
	const T, rows, S = 32, 24, 64
	data, _ := tokenWindows(t, seq, T, rows)
	out := filepath.Join(t.TempDir(), "sampled")
	if _, err := rt.Run(context.Background(), Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: data, Out: out, Threads: 1,
		Dtype: "f16", Samples: S, SampleTemperature: 1.25}); err != nil {
		t.Fatal(err)
	}
	c, err := formats.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Config().TopK
	var hit, mass float64
	var n int
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for q, y := range b.Labels {
			for j := range k {
				if b.SampleCount[q*k+j] == 0 {
					break
				}
				if int64(b.TopKIndex[q*k+j]) == y {
					hit++
				}
				mass += math.Exp(float64(b.TopKLogit[q*k+j] - b.LogSumExp[q]))
			}
			n++
		}
	}
	c.Close()
	var got struct {
		Reader    string  `json:"reader"`
		Positions int     `json:"positions"`
		Hit       float64 `json:"hit"`
		Mass      float64 `json:"mass"`
		DrawsMin  int     `json:"draws_min"`
		DrawsMax  int     `json:"draws_max"`
	}
	duckdb(&got, "duckdb_sampled.mjs", out, fmt.Sprint(T))
	wantHit, wantMass := hit/float64(n), mass/float64(n)
	// Go adds logsumexp back to the stored log-probabilities in float32.
	if got.Positions != n || math.Abs(got.Hit-wantHit) > 1e-12 || math.Abs(got.Mass-wantMass) > 1e-5 || got.DrawsMin != S || got.DrawsMax != S {
		t.Errorf("%s: %d positions, hit %.6f, mass %.6f, draws %d..%d; Go: %d, %.6f, %.6f, %d", got.Reader, got.Positions, got.Hit, got.Mass,
			got.DrawsMin, got.DrawsMax, n, wantHit, wantMass, S)
	}
	t.Logf("%s: next token drawn at %.1f %% of %d positions, drawn mass %.4f, as Go", got.Reader, 100*got.Hit, got.Positions, got.Mass)
}

// TestExtractSequenceResume stops a sampled per-token extraction after its
// first part and resumes it: every row's draws, logits, labels and hidden
// state are bit-identical to those of an uninterrupted run.
func TestExtractSequenceResume(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	data, _ := tokenWindows(t, seq, 16, 80)
	base := Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: data, Batch: 4, PartRows: 4, Threads: 1,
		Samples: 12, Dtype: "f16", SampleSeed: 3, Hidden: []string{"hidden_states.2"}}
	whole := base
	whole.Out = filepath.Join(t.TempDir(), "whole")
	if _, err := rt.Run(context.Background(), whole); err != nil {
		t.Fatal(err)
	}
	stopped := base
	stopped.Out = filepath.Join(t.TempDir(), "stopped")
	ctx, cancel := context.WithCancel(context.Background())
	stopped.Progress = func(done, total int64) {
		if done >= 4 {
			cancel()
		}
	}
	if _, err := rt.Run(ctx, stopped); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	stopped.Progress, stopped.Resume = nil, true
	res, err := rt.Run(context.Background(), stopped)
	if err != nil || res.Skipped == 0 {
		t.Fatalf("resume: %v, %+v", err, res)
	}
	a, b := readJoined(t, whole.Out), readJoined(t, stopped.Out)
	if len(a.Rows) != 80 || !slices.Equal(a.Rows, b.Rows) || !slices.Equal(a.Labels, b.Labels) || !slices.Equal(a.TopKIndex, b.TopKIndex) ||
		!slices.Equal(a.SampleCount, b.SampleCount) || !slices.Equal(a.TopKLogit, b.TopKLogit) || !slices.Equal(a.LogSumExp, b.LogSumExp) ||
		!slices.Equal(a.Hidden["hidden_states.2"], b.Hidden["hidden_states.2"]) {
		t.Error("the resumed cache differs from the uninterrupted one")
	}
}

// TestSequenceAgainstPyTorch checks a per-token cache against an
// independent implementation: ../shared/peers/seq_targets.py runs the
// original stories260K checkpoint (the llama2.c .bin) in PyTorch over its
// own windows of TinyStories and writes them (tokens-val.npy) with the
// teacher's NLL and per-position logsumexp. Extracting those windows with
// the ONNX teacher gives the same NLL within 1e-3 nats/token and the same
// logsumexp at every position within 1e-3. It needs Debian's python3-torch
// (.ci/run installs it); without it the test skips, except under CI.
func TestSequenceAgainstPyTorch(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	sharedtest.RequirePyTorch(t)
	if testing.Short() {
		t.Skip("runs PyTorch over 40 KB of text")
	}
	tmp := t.TempDir()
	text, err := os.ReadFile(filepath.Join(seq, "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	excerpt := filepath.Join(tmp, "text.txt")
	if err := os.WriteFile(excerpt, text[:40000], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "peer")
	cmd := exec.Command("/usr/bin/python3", filepath.Join(seq, "..", "..", "peers", "seq_targets.py"), "--ckpt", filepath.Join(seq, "stories260K.bin"),
		"--tok", filepath.Join(seq, "tok512.bin"), "--text", excerpt, "--out-dir", out, "--seq-len", "128", "--k", "4", "--threads", "1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seq_targets.py: %v\n%s", err, msg)
	}
	var targets struct {
		Splits map[string]struct {
			Windows int     `json:"windows"`
			NLL     float64 `json:"nll"`
			Top1    float64 `json:"top1_acc"`
		} `json:"splits"`
	}
	js, err := os.ReadFile(filepath.Join(out, "targets.json"))
	if err == nil {
		err = json.Unmarshal(js, &targets)
	}
	if err != nil {
		t.Fatal(err)
	}
	peer := targets.Splits["val"]
	cache := filepath.Join(tmp, "cache")
	if _, err := rt.Run(context.Background(), Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: filepath.Join(out, "tokens-val.npy"),
		Out: cache, Threads: 1, Batch: 4}); err != nil {
		t.Fatal(err)
	}
	lseDS, err := dataset.Open(filepath.Join(out, "teacher-val-lse.npy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var lse dataset.Batch
	if err := lseDS.Read(0, lseDS.Len(), &lse); err != nil {
		t.Fatal(err)
	}
	lseDS.Close()
	peerLSE := lse.Cols[lseDS.Columns()[0].Name]
	c, err := formats.Open(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var nll, worst float64
	var right, n int
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for q, y := range b.Labels {
			s := b.Logits[q*512 : (q+1)*512]
			l := formats.LogSumExp(s)
			nll += l - float64(s[y])
			if argmax(s) == int(y) {
				right++
			}
			p := int(b.Rows[q/128])*128 + q%128
			worst = max(worst, math.Abs(l-float64(peerLSE[p])))
			n++
		}
	}
	nll /= float64(n)
	if c.NumRows() != int64(peer.Windows) || math.Abs(nll-peer.NLL) > 1e-3 || worst > 1e-3 {
		t.Errorf("%d windows, NLL %.5f, top-1 %.4f, worst |Δlogsumexp| %.2e; PyTorch: %d windows, NLL %.5f, top-1 %.4f",
			c.NumRows(), nll, float64(right)/float64(n), worst, peer.Windows, peer.NLL, peer.Top1)
	}
	t.Logf("ONNX cache vs PyTorch on %d windows of 128: NLL %.5f vs %.5f nats/token, top-1 %.4f vs %.4f, worst |Δlogsumexp| %.2e",
		c.NumRows(), nll, peer.NLL, float64(right)/float64(n), peer.Top1, worst)
}

// TestSeqTopKNonFinite runs seq_nonfinite.onnx (logits[n,t] = table[id]:
// id 0 a NaN row, id 1 a −Inf score, id 2 a +Inf score, ids 3..5 finite)
// as a top-k teacher. On finite windows the top-k taken inside the graph
// (Model.WithTopK) equals formats.TopK over the table rows, and equals the
// Go path that --allow-nonfinite takes. A window holding id 0, 1 or 2 is
// refused naming its row, whether the bad score is in the top-k (NaN, +Inf)
// or not (−Inf, seen through the in-graph minimum), as the dense path
// refuses it; --allow-nonfinite keeps it.
func TestSeqTopKNonFinite(t *testing.T) {
	rt := requireRuntime(t)
	table := [][]float32{3: {0.5, 2.0, -1.0, 1.5, 0.25, -0.5}, 4: {-2.0, 0.0, 3.0, 1.0, 1.0, 0.5}, 5: {1.0, -1.0, 0.0, 2.5, -0.25, 0.75}}
	const T = 4
	write := func(windows ...[]float32) string {
		path := filepath.Join(t.TempDir(), "windows.npy")
		var x []float32
		for _, w := range windows {
			x = append(x, w...)
		}
		if err := dataset.WriteNPYFile(path, []int{len(windows), T + 1}, x); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := func(data string, o Options) (*formats.Batch, error) {
		o.Teacher, o.Data, o.Out, o.Batch, o.Threads = tiny+"seq_nonfinite.onnx", data, filepath.Join(t.TempDir(), "cache"), 2, 1
		if _, err := rt.Run(context.Background(), o); err != nil {
			return nil, err
		}
		return readJoined(t, o.Out), nil
	}
	good := write([]float32{3, 4, 5, 3, 4}, []float32{5, 5, 4, 3, 3}, []float32{4, 3, 5, 4, 5})
	graph, err := run(good, Options{TopK: 3})
	if err != nil {
		t.Fatal(err)
	}
	goPath, err := run(good, Options{TopK: 3, AllowNonFinite: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{3, 4, 5, 3, 5, 5, 4, 3, 4, 3, 5, 4}
	idx, val := make([]int32, 3), make([]float32, 3)
	for q, id := range ids {
		lse := formats.TopK(idx, val, table[id])
		for name, b := range map[string]*formats.Batch{"in-graph": graph, "Go": goPath} {
			if !slices.Equal(b.TopKIndex[q*3:(q+1)*3], idx) || !slices.Equal(b.TopKLogit[q*3:(q+1)*3], val) || math.Abs(float64(b.LogSumExp[q]-lse)) > 1e-6 {
				t.Errorf("%s position %d (id %d): top-3 %v %v lse %v, want %v %v %v", name, q, id,
					b.TopKIndex[q*3:(q+1)*3], b.TopKLogit[q*3:(q+1)*3], b.LogSumExp[q], idx, val, lse)
			}
		}
	}
	for bad, what := range map[float32]string{0: "NaN", 1: "-Inf outside the top-3", 2: "+Inf"} {
		data := write([]float32{3, 4, 5, 3, 4}, []float32{5, 5, 4, 3, 3}, []float32{4, 3, 5, 4, 5}, []float32{4, 5, bad, 3, 4})
		for _, k := range []int{3, 0} {
			_, err := run(data, Options{TopK: k})
			if err == nil || !strings.Contains(err.Error(), "NaN or Inf scores for rows 3;") {
				t.Errorf("%s, --topk %d: %v, want the error naming row 3", what, k, err)
			}
		}
		if _, err := run(data, Options{TopK: 3, AllowNonFinite: true}); err != nil {
			t.Errorf("%s with --allow-nonfinite: %v", what, err)
		}
	}
}
