//go:build cgo

package extract

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// plan is everything decided before the first batch runs.
type plan struct {
	o       Options
	model   *Model
	ds      dataset.Dataset
	src     ScoreSource
	inputs  []TensorInfo // model inputs
	columns []string     // dataset column for each model input
	shapes  [][]int64    // per-sample shape fed for each model input
	fetch   []string     // tensor names to fetch: scores, then hidden
	session *Session
	// sessionModel is the graph the session runs (p.model, or it with the
	// batch axis relaxed); scoreTensors is how many fetched tensors carry
	// the scores: 1 (the scores), or 4 with the top-k taken in the graph
	// (values, indices, logsumexp, minimum; see topKInGraph). The hidden
	// states follow them.
	sessionModel *Model
	scoreTensors int
	runBatch     int   // rows per session run (the fixed batch, or o.Batch)
	fixed        int64 // fixed batch that must be padded to; 0 = none
	relaxed      bool
	classes      int
	hidden       []formats.TensorSpec
	kind         ScoreKind

	// A sequence teacher (token ids in, a score vector per token out):
	// positions is T, ids the index of the token-id input, whose dataset
	// column holds windows of T+1 tokens (the first T are fed, the last T
	// are the next-token labels), and fills says how each other input is
	// made when the dataset has no column for it ("" = from its column).
	positions int
	ids       int
	fills     []string

	committed formats.Manifest // with errDone: the shard's committed manifest
	// want and wantCfg are what this run writes (plan.manifest, computed
	// once in createOrAppend: it hashes the dataset), for judging a commit
	// another attempt made first.
	want    formats.Manifest
	wantCfg formats.Config
}

// job is one teacher batch travelling through the pipeline.
type job struct {
	seq    int // position in the reader's order
	rows   []int64
	labels []int64
	inputs [][]float32 // per model input, preprocessed
	outs   []Tensor    // scores, then hidden
	last   bool        // last batch of its part
	err    error
}

// Run extracts the teacher's outputs over the dataset into the cache
// directory o.Out. Reading and preprocessing, teacher runs and writing run
// in separate goroutines joined by bounded queues, so memory stays bounded
// whatever the dataset size. When ctx is cancelled, the part in flight is
// finished and written and Run returns ErrInterrupted. While another run
// (in this process or another) writes the same cache directory, Run fails
// at once with an error wrapping formats.ErrLocked that says so. A run
// that fails before committing a part of a cache it created removes the
// cache (formats.CacheWriter.Discard), leaving o.Out as it was.
func (rt *Runtime) Run(ctx context.Context, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// Fail at once, before loading the teacher, if a run is writing Out.
	if dir := outDir(o); busy(dir) {
		return nil, lockedError(dir)
	}
	p, err := rt.plan(o)
	if err != nil {
		return nil, err
	}
	if o.OnPlan != nil {
		o.OnPlan(PlanInfo{Classes: p.classes, Positions: p.positions})
	}
	defer p.ds.Close()
	defer p.session.Close()
	return p.run(ctx)
}

func (p *plan) run(ctx context.Context) (*Result, error) {
	o := p.o
	res := &Result{Source: p.src, Relaxed: p.relaxed, FixedBatch: p.model.FixedBatch()}
	rows := int64(p.ds.Len())
	lo, hi := shardRows(rows, o.ShardIndex, o.ShardCount)
	cw, err := p.openCache(rows)
	if errors.Is(err, errDone) {
		o.Log("shard %d/%d is already committed in %s (%d rows); nothing to do", o.ShardIndex, o.ShardCount, p.outDir(), p.committed.Rows)
		return &Result{Source: p.src, AlreadyCommitted: true, Skipped: p.committed.Rows}, nil
	}
	if err != nil {
		return nil, err
	}
	// On every return but success: a run that created the cache and
	// committed no part removes it (Discard), so that the plain command
	// runs again instead of finding a cache of no rows; otherwise the
	// parts stay for --resume. After Close it does nothing.
	defer cw.Discard()
	res.Skipped = cw.NextRow()
	start := lo + res.Skipped
	if start > hi {
		return nil, fmt.Errorf("%w: the cache in %s holds %d rows but shard %d/%d of %s has only %d",
			ErrSettings, p.outDir(), res.Skipped, o.ShardIndex, o.ShardCount, o.Data, hi-lo)
	}
	if res.Skipped > 0 {
		o.Log("resuming after %d complete rows (%d parts)", res.Skipped, len(cw.Manifest().Parts))
	}
	total := hi - lo
	if o.Progress != nil {
		o.Progress(res.Skipped, total)
	}

	// ctx cancellation (Ctrl-C) makes the reader stop at the next part
	// boundary; kill stops every stage at once (an error).
	kill, abort := context.WithCancel(context.Background())
	defer abort()
	// o.Streams runners take batches in turn and run the teacher on them
	// at once; the writer puts their results back in order (job.seq).
	jobs := make(chan *job, o.Streams+1)
	results := make(chan *job, o.Streams+1)
	var wg, runners sync.WaitGroup
	wg.Add(1)
	go func() { // reader: dataset rows → preprocessed batches
		defer wg.Done()
		defer close(jobs)
		p.read(ctx, kill, start, hi, jobs)
	}()
	for range o.Streams {
		runners.Add(1)
		go func() { // runner: batches → teacher outputs
			defer runners.Done()
			for j := range jobs {
				if j.err == nil {
					j.outs, j.err = p.infer(j)
				}
				select {
				case results <- j:
				case <-kill.Done():
					return
				}
			}
		}()
	}
	go func() {
		runners.Wait()
		close(results)
	}()
	inOrder := reorder(results)
	// writer (this goroutine): teacher outputs → part files
	var firstErr error
	var part *formats.PartWriter
	b := p.newBatch()
	fail := func(err error) {
		firstErr = err
		abort()
		if part != nil {
			part.Abort()
			part = nil
		}
	}
	for j := range inOrder {
		if firstErr != nil {
			continue
		}
		if j.err != nil {
			fail(j.err)
			continue
		}
		b.Reset()
		if err := p.fill(b, j); err != nil {
			fail(err)
			continue
		}
		if part == nil {
			if part, err = cw.NewPart(); err != nil {
				fail(err)
				continue
			}
		}
		if err := part.Write(b); err != nil {
			fail(err)
			continue
		}
		res.Rows += int64(len(j.rows))
		if j.last {
			_, err := part.Commit()
			part = nil
			if err != nil {
				fail(err)
				continue
			}
			res.Parts++
		}
		if o.Progress != nil {
			o.Progress(res.Skipped+res.Rows, total)
		}
	}
	wg.Wait()
	runners.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	if part != nil { // cannot happen: the reader ends parts with last
		part.Abort()
	}
	if res.Skipped+res.Rows < total {
		res.Interrupted = true
		if err := cw.Discard(); err != nil {
			return res, err
		}
		return res, ErrInterrupted
	}
	if err := cw.Close(); err != nil {
		return res, p.lostCommit(err, total)
	}
	return res, nil
}

// lostCommit judges the error of the final commit: when another attempt
// (a duplicate worker) committed the shard first with the same teacher,
// data and settings and all its rows, the shard is done and this run
// succeeded in effect (its own parts were removed); otherwise it is the
// error.
func (p *plan) lostCommit(err error, total int64) error {
	var ce *formats.CommittedError
	if !errors.As(err, &ce) {
		return err
	}
	if diffs := compareManifests(ce.Manifest, p.want, p.wantCfg); len(diffs) > 0 || ce.Manifest.Rows != total {
		return fmt.Errorf("%w; and the committed cache differs from this run's (%d rows of %d; %s)", err, ce.Manifest.Rows, total, strings.Join(diffs, "; "))
	}
	p.o.Log("another attempt committed %s first with the same settings and all %d rows; this attempt's parts were removed", p.outDir(), total)
	return nil
}

// reorder yields the jobs received on in by increasing seq, starting at
// 0, holding the early ones back (at most the runners' count plus the
// channels' capacity); when in closes with a gap (the reader or a runner
// stopped early), it yields what can be yielded in order and the rest in
// seq order, so the writer sees every error.
func reorder(in <-chan *job) func(func(*job) bool) {
	return func(yield func(*job) bool) {
		held := map[int]*job{}
		next := 0
		for j := range in {
			held[j.seq] = j
			for held[next] != nil {
				j := held[next]
				delete(held, next)
				next++
				if !yield(j) {
					return
				}
			}
		}
		for _, seq := range slices.Sorted(maps.Keys(held)) {
			if !yield(held[seq]) {
				return
			}
		}
	}
}

// shardRows returns the rows [lo, hi) shard i of n handles: contiguous and
// deterministic, the same for every run over the same dataset.
func shardRows(rows int64, i, n int) (lo, hi int64) {
	return rows * int64(i) / int64(n), rows * int64(i+1) / int64(n)
}

// read produces the batches of rows [start, end), cut into parts of
// PartRows rows, each part's last batch marked. On ctx cancellation it
// finishes the part it is in and stops; on kill it stops at once.
func (p *plan) read(ctx, kill context.Context, start, end int64, out chan<- *job) {
	o := p.o
	var b dataset.Batch
	seq := 0
	for ps := start; ps < end; ps += int64(o.PartRows) {
		if ctx.Err() != nil {
			return // stop between parts
		}
		pe := min(ps+int64(o.PartRows), end)
		for r := ps; r < pe; r += int64(o.Batch) {
			n := int(min(int64(o.Batch), pe-r))
			j := &job{seq: seq, last: r+int64(n) >= pe}
			seq++
			if err := p.ds.Read(int(r), n, &b); err != nil {
				j.err = fmt.Errorf("reading %s rows %d..%d: %w", o.Data, r, r+int64(n), err)
			} else if b.Len() != n {
				j.err = fmt.Errorf("reading %s rows %d..%d: got %d rows", o.Data, r, r+int64(n), b.Len())
			} else {
				p.toJob(j, &b)
			}
			select {
			case out <- j:
			case <-kill.Done():
				return
			}
			if j.err != nil {
				return
			}
		}
	}
}

// toJob copies a dataset batch into j, preprocessing the inputs. For a
// sequence teacher the token windows of T+1 are split into the T fed ids
// and the T next-token labels, and the generated inputs are filled.
func (p *plan) toJob(j *job, b *dataset.Batch) {
	j.rows = append([]int64(nil), b.Rows...)
	if b.Labels != nil && p.positions == 0 {
		j.labels = append([]int64(nil), b.Labels...)
	}
	n, T := b.Len(), p.positions
	for i, col := range p.columns {
		if T > 0 {
			j.inputs = append(j.inputs, p.seqInput(i, b.Cols[col], n, j))
			continue
		}
		v := append([]float32(nil), b.Cols[col]...)
		p.o.Preprocess.Apply(v, b.Len(), formats.Channels(p.shapes[i]))
		j.inputs = append(j.inputs, v)
	}
}

// checkIDs checks that a sequence job's token ids and labels are ids of
// the teacher's vocabulary: whole numbers in [0, classes).
func (p *plan) checkIDs(j *job) error {
	T := p.positions
	bad := func(v float64) bool { return v != math.Trunc(v) || v < 0 || v >= float64(p.classes) }
	for k, v := range j.inputs[p.ids] {
		if bad(float64(v)) {
			return fmt.Errorf("row %d position %d: %v is not a token id of the teacher's %d-token vocabulary; make the windows with the teacher's tokenizer (distill data text)",
				j.rows[k/T], k%T, v, p.classes)
		}
	}
	for k, v := range j.labels {
		if bad(float64(v)) {
			return fmt.Errorf("row %d position %d: next token %d is not a token id of the teacher's %d-token vocabulary; make the windows with the teacher's tokenizer (distill data text)",
				j.rows[k/T], k%T, v, p.classes)
		}
	}
	return nil
}

// seqInput returns input i of a sequence teacher for n rows: the first T
// of each window of T+1 ids (their last T go to j.labels), or a filled
// input (attention_mask ones, position_ids 0..T−1, token_type_ids zeros),
// or the dataset's column as it is.
func (p *plan) seqInput(i int, col []float32, n int, j *job) []float32 {
	T := p.positions
	v := make([]float32, n*T)
	switch {
	case i == p.ids:
		for r := range n {
			w := col[r*(T+1) : (r+1)*(T+1)]
			copy(v[r*T:], w[:T])
			for _, y := range w[1:] {
				j.labels = append(j.labels, int64(y))
			}
		}
	case p.fills[i] == fillOnes:
		for k := range v {
			v[k] = 1
		}
	case p.fills[i] == fillPositions:
		for k := range v {
			v[k] = float32(k % T)
		}
	case p.fills[i] == fillZeros:
	default:
		copy(v, col)
	}
	return v
}

// infer runs the teacher on one job, in runBatch slices, padding the last
// slice of a fixed-batch model with zeros and dropping the padded rows.
func (p *plan) infer(j *job) ([]Tensor, error) {
	n := len(j.rows)
	var outs []Tensor
	for s := 0; s < n; s += p.runBatch {
		m := min(p.runBatch, n-s)
		feed := m
		if p.fixed > 0 {
			feed = int(p.fixed)
		}
		in := make([]Tensor, len(p.inputs))
		for i := range p.inputs {
			size := 1
			for _, d := range p.shapes[i] {
				size *= int(d)
			}
			data := j.inputs[i][s*size : (s+m)*size]
			if feed > m {
				data = append(append(make([]float32, 0, feed*size), data...), make([]float32, (feed-m)*size)...)
			}
			in[i] = Tensor{Shape: append([]int64{int64(feed)}, p.shapes[i]...), Data: data}
		}
		res, err := p.session.Run(in)
		if err != nil {
			return nil, fmt.Errorf("teacher run on rows %d..%d: %w", j.rows[s], j.rows[s]+int64(m), err)
		}
		if outs == nil {
			outs = make([]Tensor, len(res))
		}
		for k, r := range res {
			if len(r.Shape) == 0 || r.Shape[0] != int64(feed) {
				return nil, fmt.Errorf("%w: tensor %q has shape %v, whose first axis is not the batch (%d): it cannot be cached per sample",
					ErrModel, p.fetch[k], r.Shape, feed)
			}
			per := len(r.Data) / feed
			outs[k].Shape = r.Shape
			outs[k].Data = append(outs[k].Data, r.Data[:m*per]...)
		}
	}
	return outs, nil
}

func (p *plan) newBatch() *formats.Batch {
	b := &formats.Batch{Hidden: map[string][]float32{}}
	if p.o.KeepInput {
		b.Inputs = map[string][]float32{}
	}
	return b
}

// fill puts a job's rows into b (reset by the caller): scores converted to
// the stored kind and checked for NaN/Inf, hidden states, inputs.
func (p *plan) fill(b *formats.Batch, j *job) error {
	n := len(j.rows)
	if p.positions > 0 {
		if err := p.checkIDs(j); err != nil {
			return err
		}
	}
	if p.scoreTensors == 4 {
		if err := p.fillTopK(b, j); err != nil {
			return err
		}
	} else if err := p.fillScores(b, j); err != nil {
		return err
	}
	b.Rows = append(b.Rows, j.rows...)
	if j.labels != nil {
		b.Labels = append(b.Labels, j.labels...)
	}
	for i, h := range p.hidden {
		d := j.outs[p.scoreTensors+i].Data
		if len(d) != n*h.Size() {
			return fmt.Errorf("%w: hidden tensor %q gave %d values for %d rows; its per-sample shape changed from %v",
				ErrModel, h.Name, len(d), n, h.Shape)
		}
		b.Hidden[h.Name] = append(b.Hidden[h.Name], d...)
	}
	if p.o.KeepInput {
		for i, in := range p.inputs {
			b.Inputs[in.Name] = append(b.Inputs[in.Name], j.inputs[i]...)
		}
	}
	return nil
}

// fillScores puts a job's full score vectors into b.Logits.
func (p *plan) fillScores(b *formats.Batch, j *job) error {
	n := len(j.rows)
	scores := j.outs[0].Data
	per := max(p.positions, 1) * p.classes
	if len(scores) != n*per {
		return fmt.Errorf("%w: score tensor %q gave %d values for %d rows, want %d classes each",
			ErrModel, p.src.Tensor, len(scores), n, per)
	}
	if p.kind == Probs {
		LogProbsInPlace(scores)
	}
	if bad := NonFinite(scores, n, per); len(bad) > 0 && !p.o.AllowNonFinite {
		return nonFiniteError(j, bad)
	}
	b.Logits = append(b.Logits, scores...)
	return nil
}

// fillTopK puts the top-k, logsumexp and minimum computed in the graph
// (topKInGraph) into b: the k class ids and scores and the logsumexp of
// every position. A position whose top-k, logsumexp or minimum is not
// finite had a NaN or infinite score (this path runs without
// --allow-nonfinite).
func (p *plan) fillTopK(b *formats.Batch, j *job) error {
	n, k := len(j.rows), p.o.TopK
	P := n * p.positions
	vals, idx, lse, mins := j.outs[0].Data, j.outs[1].Data, j.outs[2].Data, j.outs[3].Data
	if len(vals) != P*k || len(idx) != P*k || len(lse) != P || len(mins) != P {
		return fmt.Errorf("%w: the in-graph top-%d of %q gave %d, %d, %d and %d values for %d rows of %d positions",
			ErrModel, k, p.src.Tensor, len(vals), len(idx), len(lse), len(mins), n, p.positions)
	}
	var bad []int
	for q := range P {
		ok := finite(lse[q]) && finite(mins[q])
		for _, v := range vals[q*k : (q+1)*k] {
			ok = ok && finite(v)
		}
		if r := q / p.positions; !ok && (len(bad) == 0 || bad[len(bad)-1] != r) {
			bad = append(bad, r)
		}
	}
	if len(bad) > 0 {
		return nonFiniteError(j, bad)
	}
	b.TopKLogit = append(b.TopKLogit, vals...)
	b.LogSumExp = append(b.LogSumExp, lse...)
	for _, c := range idx {
		if c < 0 || int(c) >= p.classes {
			return fmt.Errorf("%w: the in-graph top-%d of %q gave class id %v of %d", ErrModel, k, p.src.Tensor, c, p.classes)
		}
		b.TopKIndex = append(b.TopKIndex, int32(c))
	}
	return nil
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// nonFiniteError names the rows of j (indices bad) with NaN or Inf scores.
func nonFiniteError(j *job, bad []int) error {
	ids := make([]string, 0, 10)
	for _, r := range bad[:min(len(bad), 10)] {
		ids = append(ids, fmt.Sprint(j.rows[r]))
	}
	more := ""
	if len(bad) > 10 {
		more = fmt.Sprintf(" and %d more", len(bad)-10)
	}
	return fmt.Errorf("teacher produced NaN or Inf scores for rows %s%s; check the input preprocessing, or pass --allow-nonfinite to keep them",
		strings.Join(ids, ", "), more)
}
