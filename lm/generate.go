package lm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// GenerateOptions configures Generate.
type GenerateOptions struct {
	Sampling
	// MaxNew is the most tokens generated per sample (≥ 1).
	MaxNew int
	// Batch is the number of prompts run together (default 1).
	Batch int
	// Seed: sample i (its prompt's index) draws from SampleRNG(Seed + i),
	// recorded in Sample.Seed, so that it can be drawn again alone (as
	// prompt 0 with that seed) whatever the batch.
	Seed uint64
	// Stop lists the ids that end a sample (the id is kept as its last
	// token). nil: the model's EOS (Info.EOS) if it has one; empty: none.
	Stop []int64
	// Pad is the id fed at padding and to finished rows (any valid id;
	// default 0).
	Pad int64
	// OnSample is called with each finished sample, in prompt order, a
	// batch at a time; an error stops Generate and is returned.
	OnSample func(Sample) error
	// Progress, if set, is called after every Step.
	Progress func(Progress)
}

// Sample is one generated sequence.
type Sample struct {
	Index  int     `json:"index"`  // the prompt's index
	Prompt []int64 `json:"prompt"` // its ids
	IDs    []int64 `json:"ids"`    // the generated ids (a stop id last when Stop says "eos")
	Seed   uint64  `json:"seed"`
	// Stop says why the sample ended: StopEOS, StopMaxNew or
	// StopMaxPositions.
	Stop string `json:"stop"`
}

// Reasons a sample ends (Sample.Stop).
const (
	StopEOS          = "eos"           // it drew a Stop id
	StopMaxNew       = "max_new"       // MaxNew tokens
	StopMaxPositions = "max_positions" // the model's context (Info.MaxPositions) is full
)

// Progress is the state of a Generate run.
type Progress struct {
	Samples, Total int   // samples finished, of the prompts
	Tokens         int64 // tokens generated so far (finished samples and the batch running)
	Elapsed        time.Duration
}

// TokensPerSecond is Tokens / Elapsed.
func (p Progress) TokensPerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Tokens) / p.Elapsed.Seconds()
}

// Generate continues each prompt (ids, BOS included if the model wants
// one) with up to MaxNew tokens drawn as o.Sampling says: Batch prompts at
// a time, left-padded (LeftPad, Positions: every row's positions are those
// it would have alone), a prefill of the prompts then one token per Step.
// A row ends at a Stop id, after MaxNew tokens, or when the model's
// context is full: a prompt plus its tokens never exceed MaxPositions,
// and as the batch's rows are fed together (padding included), every row
// stops once the batch's next call would exceed MaxPositions (so a shorter
// prompt batched with a longer one may end earlier, with
// StopMaxPositions).
//
// A prompt that is empty, has an id outside the vocabulary or leaves no
// room for a token is an error before anything runs. When ctx is
// cancelled, Generate returns ctx's error after the samples already passed
// to OnSample; the batch running is dropped.
func Generate(ctx context.Context, m Model, prompts [][]int64, o *GenerateOptions) error {
	if o == nil {
		o = &GenerateOptions{}
	}
	info := m.Info()
	if err := o.Check(); err != nil {
		return err
	}
	if o.MaxNew < 1 {
		return fmt.Errorf("lm: %d new tokens: want at least 1", o.MaxNew)
	}
	B := max(o.Batch, 1)
	stop := o.Stop
	if stop == nil && info.EOS >= 0 {
		stop = []int64{int64(info.EOS)}
	}
	if o.Pad < 0 || info.Vocab > 0 && o.Pad >= int64(info.Vocab) {
		return fmt.Errorf("lm: pad id %d outside the model's %d-token vocabulary", o.Pad, info.Vocab)
	}
	for i, p := range prompts {
		if err := CheckPrompt(p, info); err != nil {
			return fmt.Errorf("prompt %d: %w", i+1, err)
		}
	}
	g := &generation{o: o, m: m, info: info, stop: stop, start: time.Now(), total: len(prompts)}
	for lo := 0; lo < len(prompts); lo += B {
		hi := min(lo+B, len(prompts))
		if err := g.batch(ctx, prompts[lo:hi], lo); err != nil {
			return err
		}
	}
	return nil
}

// CheckPrompt refuses a prompt the model of info cannot continue: empty,
// an id outside its vocabulary, or no room left in its context.
func CheckPrompt(p []int64, info Info) error {
	if len(p) == 0 {
		return errors.New("lm: an empty prompt (start it with the BOS id at least)")
	}
	for _, id := range p {
		if id < 0 || info.Vocab > 0 && id >= int64(info.Vocab) {
			return fmt.Errorf("lm: token id %d outside the model's %d-token vocabulary: tokenize with the model's tokenizer", id, info.Vocab)
		}
	}
	if info.MaxPositions > 0 && len(p) >= info.MaxPositions {
		return fmt.Errorf("lm: a prompt of %d tokens leaves no room in the model's context of %d positions: shorten it", len(p), info.MaxPositions)
	}
	return nil
}

// generation is the state of one Generate call.
type generation struct {
	o       *GenerateOptions
	m       Model
	info    Info
	stop    []int64
	sampler Sampler
	start   time.Time
	done    int   // samples finished
	tokens  int64 // tokens generated
	total   int
}

func (g *generation) progress() {
	if g.o.Progress != nil {
		g.o.Progress(Progress{Samples: g.done, Total: g.total, Tokens: g.tokens, Elapsed: time.Since(g.start)})
	}
}

// batch generates the samples of prompts (the first being prompt first)
// as one batch.
func (g *generation) batch(ctx context.Context, prompts [][]int64, first int) error {
	B, V := len(prompts), g.info.Vocab
	sess, err := g.m.Start(B)
	if err != nil {
		return err
	}
	defer sess.Close()
	g.sampler.Sampling = g.o.Sampling
	samples := make([]Sample, B)
	rngs := make([]*rand.Rand, B)
	for b, p := range prompts {
		seed := g.o.Seed + uint64(first+b)
		samples[b] = Sample{Index: first + b, Prompt: p, Seed: seed}
		rngs[b] = SampleRNG(seed)
	}
	ids, mask, L := LeftPad(prompts, g.o.Pad)
	pos := Positions(mask, B, L)
	s := L
	running := B
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		logits, err := sess.Step(ids, s, mask, pos)
		if err != nil {
			return err
		}
		if V == 0 {
			V = len(logits) / (B * s)
		}
		next := make([]int64, B)
		for b := range B {
			next[b] = g.o.Pad
			sm := &samples[b]
			if sm.Stop != "" {
				continue
			}
			row := logits[((b+1)*s-1)*V : (b+1)*s*V]
			id := int64(g.sampler.Sample(row, rngs[b]))
			sm.IDs = append(sm.IDs, id)
			g.tokens++
			next[b] = id
			switch {
			case slices.Contains(g.stop, id):
				sm.Stop = StopEOS
			case len(sm.IDs) == g.o.MaxNew:
				sm.Stop = StopMaxNew
			case g.info.MaxPositions > 0 && len(sm.Prompt)+len(sm.IDs) >= g.info.MaxPositions,
				g.info.MaxPositions > 0 && sess.Past()+1 > g.info.MaxPositions:
				sm.Stop = StopMaxPositions
			}
			if sm.Stop != "" {
				running--
			}
		}
		g.progress()
		if running == 0 {
			break
		}
		// The next call: one token per row, the mask grown by a column of
		// ones (finished rows are fed Pad and their logits ignored).
		total := sess.Past() + 1
		grown := make([]int64, B*total)
		for b := range B {
			copy(grown[b*total:], mask[b*(total-1):(b+1)*(total-1)])
			grown[b*total+total-1] = 1
		}
		ids, mask, s = next, grown, 1
		pos = Positions(mask, B, 1)
	}
	for _, sm := range samples {
		g.done++
		if g.o.OnSample != nil {
			if err := g.o.OnSample(sm); err != nil {
				return err
			}
		}
	}
	g.progress()
	return nil
}
