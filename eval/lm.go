package eval

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/train"
)

// LMInfo describes a language model and how it was measured: the model's
// lm.Info, the window length fed and the token latencies.
type LMInfo struct {
	Kind         string `json:"kind"` // lm.Info.Kind: "checkpoint", "onnx-kv" or "onnx"
	KVCache      bool   `json:"kv_cache"`
	Vocab        int    `json:"vocab"`
	MaxPositions int    `json:"max_positions,omitempty"`
	BOS          int    `json:"bos"`
	EOS          int    `json:"eos"`
	// SeqLen is the tokens fed per window (the data's T).
	SeqLen int `json:"seq_len"`
	// Prefill is one call over a whole window at batch 1; Decode the
	// single-token calls after a prompt, one entry per batch size.
	Prefill *TokenLatency  `json:"prefill,omitempty"`
	Decode  []TokenLatency `json:"decode,omitempty"`
}

// TokenLatency is the time of one kind of lm.Session.Step call: Batch rows
// of Tokens new tokens each, after Past tokens already fed.
type TokenLatency struct {
	Batch  int `json:"batch"`
	Past   int `json:"past"`   // tokens fed before the first timed call: 0 for prefill, the prompt for decode
	Tokens int `json:"tokens"` // new tokens per row per call: the window for prefill, 1 for decode
	// Steps is the number of single-token calls of one decoding run (the
	// past grows from Past to Past+Steps−1); 0 for prefill.
	Steps        int     `json:"steps,omitempty"`
	Calls        int     `json:"calls"` // calls timed
	P50          float64 `json:"p50_ms_per_call"`
	P99          float64 `json:"p99_ms_per_call"`
	TokensPerSec float64 `json:"tokens_per_sec"` // Batch × Tokens / p50
}

// LMOptions are the settings of RunLM. The zero value is usable.
type LMOptions struct {
	// Options: Name, Batch (windows per call; 0 = 8), BenchTime (the
	// budget of each latency measurement; 0 skips them), Threads,
	// ToolVersion, Progress (windows), Warn. Input is not used.
	Options
	// DecodePrompt is the tokens fed before the timed decoding steps (0 =
	// 16) and DecodeSteps the single-token steps of a run (0 = 64), taken
	// from the first windows of the data (teacher forcing: no sampling is
	// timed). DecodeBatch lists the batch sizes decoding is timed at
	// (nil = 1 and 16).
	DecodePrompt, DecodeSteps int
	DecodeBatch               []int
}

// Default decoding benchmark of LMOptions.
const (
	DefaultDecodePrompt = 16
	DefaultDecodeSteps  = 64
)

// DefaultDecodeBatch is LMOptions.DecodeBatch's default.
var DefaultDecodeBatch = []int{1, 16}

// NLL is the mean negative log-likelihood of the true next token, in nats
// per position, and the perplexity:
//
//	NLL = −(1/N) Σ_i log q_i(y_i),  q_i = softmax(scores_i),  perplexity = exp(NLL)
//
// over the N positions with finite scores and a label in [0, C) (log q
// from the Accumulator's LogQ, formats.LogSumExp in float64). Positions
// with non-finite scores are counted by the Accumulator (NonFinite), not
// here.
type NLL struct {
	sum float64
	n   int64
}

// Add implements Metric.
func (m *NLL) Add(p *Position) {
	if !p.Finite || !p.HasLabel || p.Label < 0 || p.Label >= int64(len(p.LogQ)) {
		return
	}
	m.sum -= p.LogQ[p.Label]
	m.n++
}

// Fill implements Metric: Tokens, NLL and Perplexity.
func (m *NLL) Fill(r *Result) {
	r.Tokens = m.n
	if m.n == 0 {
		return
	}
	nll := m.sum / float64(m.n)
	ppl := math.Exp(nll)
	r.NLL, r.Perplexity = &nll, &ppl
}

// LMMetrics returns the metrics of a language model over a vocabulary of
// classes: NLL, next-token accuracy (NewTokenAccuracy), Agreement with
// the teacher when there is one, and Calibration against the labels.
func LMMetrics(classes int, teacher bool) (ms []Metric, agree *Agreement) {
	ms = []Metric{&NLL{}, NewTokenAccuracy(classes)}
	if teacher {
		agree = &Agreement{}
		ms = append(ms, agree)
	}
	return append(ms, NewCalibration("labels")), agree
}

// RunLM evaluates the language model m on the windows of d: each window of
// T tokens is fed in one Step from an empty past (all-ones mask, positions
// 0..T−1), d.Batch windows per session, and every position is a Position
// of the Accumulator: its label the next token, its teacher scores the
// cache's (LMMetrics). The result's Rows are windows, Tokens positions,
// Accuracy the next-token top-1 accuracy, Agreement and KL per token, ECE
// against the next tokens. With o.BenchTime it times prefill and decoding
// (BenchPrefill, BenchDecode) on the first windows.
func RunLM(ctx context.Context, m lm.Model, d *LMData, o *LMOptions) (*Result, error) {
	var opts LMOptions
	if o != nil {
		opts = *o
	}
	if opts.Batch == 0 {
		opts.Batch = 8
	}
	if opts.DecodePrompt == 0 {
		opts.DecodePrompt = DefaultDecodePrompt
	}
	if opts.DecodeSteps == 0 {
		opts.DecodeSteps = DefaultDecodeSteps
	}
	if opts.DecodeBatch == nil {
		opts.DecodeBatch = DefaultDecodeBatch
	}
	info := m.Info()
	V, T := info.Vocab, d.T
	if d.Vocab > 0 && d.Vocab != V {
		return nil, fmt.Errorf("the model %s predicts %d tokens but %s holds ids of a %d-token vocabulary: evaluate it on data made with its tokenizer", info.Path, V, d.Info.Path, d.Vocab)
	}
	d.Vocab = V
	if info.MaxPositions > 0 && T > info.MaxPositions {
		return nil, fmt.Errorf("%s holds windows of %d tokens but the model %s takes at most %d positions: make windows of at most %d (distill data text --seq-len)", d.Info.Path, T, info.Path, info.MaxPositions, info.MaxPositions)
	}
	if opts.BenchTime > 0 {
		if need := opts.DecodePrompt + opts.DecodeSteps; info.MaxPositions > 0 && need > info.MaxPositions {
			return nil, optionErrorf("--decode-prompt %d + --decode-steps %d = %d positions, but the model %s takes at most %d", opts.DecodePrompt, opts.DecodeSteps, need, info.Path, info.MaxPositions)
		}
	}
	res := &Result{Name: opts.Name, Data: d.Info, Threads: opts.Threads, Tool: opts.ToolVersion,
		Model: ModelInfo{Path: info.Path, Kind: info.Kind, File: info.Path, FileBytes: info.Bytes, SHA256: info.SHA256, Params: info.Params, ScoreKind: "logits"},
		LM:    &LMInfo{Kind: info.Kind, KVCache: info.KVCache, Vocab: V, MaxPositions: info.MaxPositions, BOS: info.BOS, EOS: info.EOS, SeqLen: T}}
	res.Model.InputShape = []int64{int64(T)}
	if info.Kind == lm.KindCheckpoint {
		res.Model.File = filepath.Join(info.Path, train.ModelFile)
	}
	if ti, c, ok := d.Teacher(); ok {
		if c != V {
			return nil, fmt.Errorf("the model %s predicts %d tokens but the teacher cache %s holds scores over %d", info.Path, V, ti.Path, c)
		}
		res.Teacher = &ti
	}
	ms, agreement := LMMetrics(V, res.Teacher != nil)
	acc := NewAccumulator(V, ms...)
	keep := 1
	for _, b := range opts.DecodeBatch {
		keep = max(keep, b)
	}
	var sample [][]int64 // the first windows' ids, for the latency runs
	var posRows, ones []int64
	start := time.Now()
	var done int64
	for ch, err := range d.Chunks(opts.Batch) {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := len(ch.Rows)
		for i := 0; i < n && len(sample) < keep; i++ {
			sample = append(sample, append([]int64(nil), ch.IDs[i*T:(i+1)*T]...))
		}
		posRows = posRows[:0]
		for _, r := range ch.Rows {
			for range T {
				posRows = append(posRows, r)
			}
		}
		err = prefill(m, ch.IDs, n, T, &ones, func(logits []float32) {
			acc.Add(logits, ch.Labels, posRows, ch.Teacher)
		})
		if err != nil {
			return nil, err
		}
		done += int64(n)
		if opts.Progress != nil {
			opts.Progress(done, d.Windows())
		}
	}
	if done == 0 {
		return nil, fmt.Errorf("%s has no windows to evaluate", d.Info.Path)
	}
	res.Seconds = time.Since(start).Seconds()
	acc.Fill(res)
	res.Rows = done
	if agreement != nil {
		res.Teacher.Matched = agreement.Matched()
	}
	if res.NonFinite > 0 && opts.Warn != nil {
		opts.Warn(fmt.Sprintf("%d of %d positions have NaN or infinite logits: counted as errors, left out of the NLL", res.NonFinite, acc.Rows()))
	}
	if opts.BenchTime <= 0 {
		return res, nil
	}
	p, err := BenchPrefill(ctx, m, sample[0], opts.BenchTime)
	if err != nil {
		return nil, err
	}
	res.LM.Prefill = &p
	for _, b := range opts.DecodeBatch {
		l, err := BenchDecode(ctx, m, sample, b, opts.DecodePrompt, opts.DecodeSteps, opts.BenchTime)
		if err != nil {
			return nil, err
		}
		res.LM.Decode = append(res.LM.Decode, l)
	}
	return res, nil
}

// prefill feeds n windows of T ids each to a fresh session of m, from an
// empty past with an all-ones mask and positions 0..T−1, and hands the
// logits [n, T, V] to use before the session closes. ones is a reused
// buffer.
func prefill(m lm.Model, ids []int64, n, T int, ones *[]int64, use func(logits []float32)) error {
	return withSession(m, n, func(s lm.Session) error {
		mask := onesOf(ones, n*T)
		logits, err := s.Step(ids, T, mask, lm.Positions(mask, n, T))
		if err != nil {
			return err
		}
		if V := m.Info().Vocab; len(logits) != n*T*V {
			return fmt.Errorf("the model returned %d logits for %d windows of %d tokens over %d", len(logits), n, T, V)
		}
		use(logits)
		return nil
	})
}

// withSession runs f on a new session of batch rows and closes it.
func withSession(m lm.Model, batch int, f func(s lm.Session) error) error {
	s, err := m.Start(batch)
	if err != nil {
		return err
	}
	err = f(s)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// onesOf returns n ones from the reused buffer buf.
func onesOf(buf *[]int64, n int) []int64 {
	for len(*buf) < n {
		*buf = append(*buf, 1)
	}
	return (*buf)[:n]
}

// BenchPrefill times one Step over the whole window ids (a fresh session
// of batch 1, empty past) as BenchLatency times a run: two warm-up calls,
// then calls until budget has passed and at least 10 were made (stopping
// at 10×budget with at least 5).
func BenchPrefill(ctx context.Context, m lm.Model, ids []int64, budget time.Duration) (TokenLatency, error) {
	T := len(ids)
	var ones []int64
	mask := onesOf(&ones, T)
	pos := lm.Positions(mask, 1, T)
	d, err := timeRuns(budget, 10, 2, func(record func(time.Duration)) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return withSession(m, 1, func(s lm.Session) error {
			t0 := time.Now()
			_, err := s.Step(ids, T, mask, pos)
			record(time.Since(t0))
			return err
		})
	})
	if err != nil {
		return TokenLatency{}, err
	}
	return tokenLatency(d, 1, 0, T, 0), nil
}

// BenchDecode times cached decoding at batch: each run starts a session,
// feeds a prompt of prompt tokens in one Step, then steps single-token
// Steps (positions prompt, prompt+1, ...), and only those are timed. Row
// b's tokens are window b mod len(windows), repeated if the run is
// longer. The runs repeat until budget has passed and 2·steps calls were
// timed (stopping at 10×budget with at least 5), after one warm-up run.
func BenchDecode(ctx context.Context, m lm.Model, windows [][]int64, batch, prompt, steps int, budget time.Duration) (TokenLatency, error) {
	token := func(b, j int) int64 {
		w := windows[b%len(windows)]
		return w[j%len(w)]
	}
	ids := make([]int64, batch*prompt)
	for b := range batch {
		for j := range prompt {
			ids[b*prompt+j] = token(b, j)
		}
	}
	var ones []int64
	onesOf(&ones, batch*(prompt+steps))
	next, pos := make([]int64, batch), make([]int64, batch)
	d, err := timeRuns(budget, 2*steps, 1, func(record func(time.Duration)) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return withSession(m, batch, func(s lm.Session) error {
			mask := ones[:batch*prompt]
			if _, err := s.Step(ids, prompt, mask, lm.Positions(mask, batch, prompt)); err != nil {
				return err
			}
			for i := range steps {
				for b := range batch {
					next[b], pos[b] = token(b, prompt+i), int64(prompt+i)
				}
				mask := ones[:batch*(prompt+i+1)]
				t0 := time.Now()
				if _, err := s.Step(next, 1, mask, pos); err != nil {
					return err
				}
				record(time.Since(t0))
			}
			return nil
		})
	})
	if err != nil {
		return TokenLatency{}, err
	}
	return tokenLatency(d, batch, prompt, 1, steps), nil
}

// tokenLatency summarizes the call times d of calls of batch rows × tokens.
func tokenLatency(d []time.Duration, batch, past, tokens, steps int) TokenLatency {
	p50, p99 := percentile(d, 50), percentile(d, 99)
	return TokenLatency{Batch: batch, Past: past, Tokens: tokens, Steps: steps, Calls: len(d),
		P50: p50.Seconds() * 1e3, P99: p99.Seconds() * 1e3, TokensPerSec: float64(batch*tokens) / p50.Seconds()}
}
