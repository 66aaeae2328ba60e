//go:build cgo

package extract

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// plan loads the teacher and the dataset, maps dataset columns to model
// inputs, chooses the score tensor, creates the session (relaxing a fixed
// batch axis when the graph allows it) and learns the output shapes from a
// first run on real rows.
func (rt *Runtime) plan(o Options) (_ *plan, err error) {
	m, err := LoadModel(o.Teacher)
	if err != nil {
		return nil, err
	}
	ds, err := dataset.Open(o.Data, o.Dataset)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	p := &plan{o: o, model: m, ds: ds}
	defer func() {
		if err != nil {
			ds.Close()
			if p.session != nil {
				p.session.Close()
			}
		}
	}()
	if ds.Len() == 0 {
		return nil, fmt.Errorf("dataset %s has no rows", o.Data)
	}
	if err := p.mapInputs(); err != nil {
		return nil, err
	}
	p.autoSizes()
	if p.src, err = m.ChooseScores(o.Output); err != nil {
		return nil, err
	}
	if o.Scores != "" {
		p.src.Kind = o.Scores
		p.src.Why = strings.TrimPrefix(p.src.Why+"; kind set by --scores", "; ")
	}
	if p.positions > 0 {
		if err := p.checkVocabulary(); err != nil {
			return nil, err
		}
	}
	p.fetch = append([]string{p.src.Tensor}, o.Hidden...)
	if err := p.openSession(rt); err != nil {
		return nil, err
	}
	if err := p.learnShapes(); err != nil {
		return nil, err
	}
	return p, p.topKInGraph(rt)
}

// autoSizes resolves Batch and PartRows left at 0 (auto) once T is
// known (AutoBatch, AutoPartRows), and says what it chose for a sequence
// teacher.
func (p *plan) autoSizes() {
	o := &p.o
	T := p.positions
	if T > 0 && (o.Batch == 0 || o.PartRows == 0) {
		p.o.Log("T = %d tokens per window: %d windows per teacher run (--batch), %d per part (--part-rows)",
			T, cmp.Or(o.Batch, AutoBatch(T)), cmp.Or(o.PartRows, AutoPartRows(T)))
	}
	o.Batch, o.PartRows = cmp.Or(o.Batch, AutoBatch(T)), cmp.Or(o.PartRows, AutoPartRows(T))
}

// topKInGraph switches a sequence teacher cached as top-k logits to a
// session that takes the top-k, logsumexp and minimum inside the graph
// (Model.WithTopK): per position V scores would otherwise be copied out
// of onnxruntime and ranked and exponentiated in Go, on the cores the
// teacher runs on. The Go path stays for classifiers (few classes),
// sampled targets (which need the whole distribution), probabilities
// (stored as their log first), --allow-nonfinite (whose NaN placement is
// formats.TopK's) and graphs older than MinTopKOpset, and is kept when
// onnxruntime cannot open the edited graph.
func (p *plan) topKInGraph(rt *Runtime) error {
	o := p.o
	if p.positions == 0 || o.TopK == 0 || o.Samples > 0 || p.kind == Probs || o.AllowNonFinite || p.sessionModel.Opset < MinTopKOpset {
		return nil
	}
	m, t, err := p.sessionModel.WithTopK(p.src.Tensor, o.TopK)
	if err != nil {
		return err
	}
	fetch := append([]string{t.Values, t.Indices, t.LSE, t.Min}, o.Hidden...)
	s, err := p.newSession(rt, m, fetch, true)
	if err != nil {
		// The session that learned the shapes works: keep it, and its
		// top-k in Go.
		o.Log("taking the top-k in Go: onnxruntime refused the graph with it inside (%s)", firstLine(err.Error()))
		return nil
	}
	p.session.Close()
	p.session, p.fetch, p.scoreTensors = s, fetch, 4
	return nil
}

// newSession opens a session of m fetching the named tensors.
func (p *plan) newSession(rt *Runtime, m *Model, fetch []string, quiet bool) (*Session, error) {
	names := make([]string, len(p.inputs))
	for i, in := range p.inputs {
		names[i] = in.Name
	}
	data, fetched, err := m.WithOutputs(fetch)
	if err != nil {
		return nil, err
	}
	return rt.NewSession(data, names, fetched, SessionOptions{Threads: p.o.intraOpThreads(), Provider: p.o.Provider, quiet: quiet})
}

// mapInputs pairs each model input with a dataset column and fixes the
// per-sample shape fed to it.
func (p *plan) mapInputs() error {
	cols := p.ds.Columns()
	byName := map[string]dataset.Column{}
	var names []string
	for _, c := range cols {
		byName[c.Name] = c
		names = append(names, fmt.Sprintf("%s%v", c.Name, c.Shape))
	}
	p.inputs = p.model.Inputs()
	var inNames []string
	for _, in := range p.inputs {
		inNames = append(inNames, in.Name)
	}
	for in, col := range p.o.InputMap {
		if !slices.Contains(inNames, in) {
			return fmt.Errorf("--map %s=%s: the model has no input %q (inputs: %s)", in, col, in, strings.Join(inNames, ", "))
		}
	}
	if p.o.Preprocess.Shape != nil && len(p.inputs) != 1 {
		return fmt.Errorf("--reshape applies to single-input models; this one has %d inputs", len(p.inputs))
	}
	if ids := seqIDsInput(p.inputs); ids >= 0 {
		return p.mapSeqInputs(ids, byName, cols, names)
	}
	for _, in := range p.inputs {
		col, ok := byName[in.Name]
		if mapped := p.o.InputMap[in.Name]; mapped != "" {
			if col, ok = byName[mapped]; !ok {
				return fmt.Errorf("--map %s=%s: the dataset has no column %q (columns: %s)", in.Name, mapped, mapped, strings.Join(names, ", "))
			}
		} else if !ok && len(p.inputs) == 1 && len(cols) == 1 {
			col, ok = cols[0], true
		}
		if !ok {
			return fmt.Errorf("model input %q has no dataset column of that name (columns: %s); name one with --map %s=COLUMN",
				in.Name, strings.Join(names, ", "), in.Name)
		}
		shape, err := p.fitShape(in, col)
		if err != nil {
			return err
		}
		if err := p.o.Preprocess.Validate(formats.Channels(shape)); err != nil {
			return err
		}
		p.columns = append(p.columns, col.Name)
		p.shapes = append(p.shapes, shape)
	}
	return nil
}

// The inputs a sequence teacher may take besides its token ids, and how
// they are filled when the dataset has no column for them.
const (
	fillOnes      = "ones"      // attention_mask: every token attends
	fillPositions = "positions" // position_ids: 0..T−1
	fillZeros     = "zeros"     // token_type_ids: one segment
)

var seqFills = map[string]string{"attention_mask": fillOnes, "position_ids": fillPositions, "token_type_ids": fillZeros}

// seqIDsInput returns the index of the token-id input of a sequence
// teacher — an integer input of rank 2 [N,T] named input_ids, or the only
// integer rank-2 input — or -1 for another kind of model.
func seqIDsInput(inputs []TensorInfo) int {
	found := -1
	for i, in := range inputs {
		if (in.Elem != Int64 && in.Elem != Int32) || len(in.Shape) != 2 {
			continue
		}
		if in.Name == "input_ids" {
			return i
		}
		if _, filled := seqFills[in.Name]; !filled {
			if found >= 0 {
				return -1 // two candidates, neither named input_ids
			}
			found = i
		}
	}
	return found
}

// mapSeqInputs maps the inputs of a sequence teacher: the token ids from a
// column of windows of T+1 ids (distill data text writes them), the
// others from a column of T values of the same name or filled.
func (p *plan) mapSeqInputs(ids int, byName map[string]dataset.Column, cols []dataset.Column, names []string) error {
	if !p.o.Preprocess.IsZero() {
		return fmt.Errorf("--scale, --mean, --std and --reshape do not apply to token ids; the teacher %q takes token ids", p.inputs[ids].Name)
	}
	in := p.inputs[ids]
	name := in.Name
	if mapped := p.o.InputMap[in.Name]; mapped != "" {
		name = mapped
	}
	col, ok := byName[name]
	if !ok && len(cols) == 1 {
		col, ok = cols[0], true
	}
	if !ok {
		return fmt.Errorf("the teacher takes token ids (%q) but the dataset has no column %q (columns: %s); make token windows with distill data text, or name the column with --map %s=COLUMN",
			in.Name, name, strings.Join(names, ", "), in.Name)
	}
	if len(col.Shape) != 1 || col.Width() < 2 {
		return fmt.Errorf("dataset column %q has shape %v; a sequence teacher reads windows of T+1 token ids (the first T are fed, the last T are the labels), as distill data text writes them",
			col.Name, col.Shape)
	}
	T := col.Width() - 1
	if d := in.Shape[1]; d > 0 && d != int64(T) {
		return fmt.Errorf("the teacher's %q takes %d tokens per row but dataset column %q holds windows of %d (T = %d); write windows of --seq-len %d",
			in.Name, d, col.Name, T+1, T, d)
	}
	p.positions, p.ids = T, ids
	for i, mi := range p.inputs {
		fill := ""
		column := col.Name
		if i != ids {
			c, ok := byName[mi.Name]
			if mapped := p.o.InputMap[mi.Name]; mapped != "" {
				c, ok = byName[mapped]
			}
			switch f, known := seqFills[mi.Name]; {
			case ok && c.Width() == T:
				column = c.Name
			case ok:
				return fmt.Errorf("dataset column %q has %d values per row; the teacher's %q takes %d", c.Name, c.Width(), mi.Name, T)
			case known:
				fill, column = f, col.Name // filled; the ids column is read anyway
			default:
				return fmt.Errorf("the teacher also takes %q, which distill cannot fill (it fills %s) and the dataset has no column of that name",
					mi.Name, strings.Join(sortedCopy(slices.Collect(mapsKeys(seqFills))), ", "))
			}
		}
		p.columns = append(p.columns, column)
		p.shapes = append(p.shapes, []int64{int64(T)})
		p.fills = append(p.fills, fill)
	}
	return nil
}

// explainSeqFailure says why a sequence teacher could not run job j: ids
// beyond its vocabulary (learned from a run on all-zero ids of the same
// shape), or else windows beyond its context.
func (p *plan) explainSeqFailure(j *job, runErr error) error {
	zero := &job{rows: j.rows}
	for _, in := range j.inputs {
		zero.inputs = append(zero.inputs, make([]float32, len(in)))
	}
	if outs, err := p.infer(zero); err == nil && len(outs[0].Shape) == 3 {
		V := outs[0].Shape[2]
		maxID := float32(0)
		for _, v := range j.inputs[p.ids] {
			maxID = max(maxID, v)
		}
		if int64(maxID) >= V {
			if meta, err := dataset.ReadTokensMeta(p.o.Data); err == nil {
				return fmt.Errorf("the dataset was tokenized with %s (%d ids) but the teacher scores %d tokens: make the windows with the teacher's tokenizer",
					meta.Tokenizer.Path, meta.VocabSize, V)
			}
			return fmt.Errorf("token id %d is beyond the teacher's %d-token vocabulary: make the windows with the teacher's tokenizer", int64(maxID), V)
		}
	}
	return fmt.Errorf("%w (windows of %d tokens: a teacher with learned or tabled positions takes at most its context length)", runErr, p.positions)
}

// checkVocabulary refuses, before any teacher run, a token dataset whose
// tokenizer (recorded by distill data text) has more ids than the teacher's
// declared vocabulary (the last axis of its score tensor).
func (p *plan) checkVocabulary() error {
	meta, err := dataset.ReadTokensMeta(p.o.Data)
	if err != nil {
		return nil // not a data text file: the ids are checked as they are read
	}
	shape := p.model.Info(p.src.Tensor).Shape
	if len(shape) == 3 && shape[2] > 0 && int64(meta.VocabSize) > shape[2] {
		return fmt.Errorf("the dataset was tokenized with %s (%d ids) but the teacher scores %d tokens: make the windows with the teacher's tokenizer",
			meta.Tokenizer.Path, meta.VocabSize, shape[2])
	}
	return nil
}

// mapsKeys returns the keys of m.
func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// fitShape returns the per-sample shape to feed input in from column col:
// the --reshape shape or the model's declared shape without the batch
// axis, with one unknown dimension solved from the column's width.
func (p *plan) fitShape(in TensorInfo, col dataset.Column) ([]int64, error) {
	width := int64(col.Width())
	var want []int64
	switch {
	case p.o.Preprocess.Shape != nil:
		want = append([]int64(nil), p.o.Preprocess.Shape...)
	case len(in.Shape) > 0:
		want = append([]int64(nil), in.Shape[1:]...)
	default:
		want = []int64{-1}
	}
	want, known, several := formats.SolveShape(want, width)
	if several {
		return nil, fmt.Errorf("model input %q has shape %s with several unknown dimensions; give the per-sample shape with --reshape",
			in.Name, in.ShapeString())
	}
	if known != width {
		return nil, fmt.Errorf("dataset column %q has %d values per row (shape %v) but model input %q takes %s (%d values per sample); fix the dataset or pass --reshape",
			col.Name, width, col.Shape, in.Name, shapeString(append([]int64{-1}, want...)), known)
	}
	return want, nil
}

// openSession creates the teacher session. A model with a fixed batch axis
// is first tried with the axis relaxed in memory; the relaxed graph is used
// only if it runs and gives the same outputs as the original on real rows
// (a Reshape to a constant [1,256] does not), else batches are run at the
// fixed size, the last one padded.
func (p *plan) openSession(rt *Runtime) error {
	open := func(m *Model, quiet bool) (*Session, error) { return p.newSession(rt, m, p.fetch, quiet) }
	s, err := open(p.model, false)
	if err != nil {
		return err
	}
	p.session, p.sessionModel, p.runBatch, p.scoreTensors = s, p.model, p.o.Batch, 1
	fixed := p.model.FixedBatch()
	if fixed == 0 {
		return nil
	}
	p.fixed, p.runBatch = fixed, int(fixed)
	if p.o.Batch == int(fixed) {
		return nil
	}
	relaxed := p.model.RelaxBatch()
	rs, err := open(relaxed, true)
	if err != nil {
		p.o.Log("model has a fixed batch of %d; running at that size (relaxing it failed: %v)", fixed, err)
		return nil
	}
	n := min(p.ds.Len(), int(2*fixed+1))
	sample, err := p.sampleJob(n)
	if err != nil {
		rs.Close()
		return err
	}
	want, err := p.infer(sample)
	if err != nil {
		rs.Close()
		return err
	}
	p.session, p.fixed, p.runBatch = rs, 0, p.o.Batch
	got, err := p.infer(sample)
	if err == nil && sameOutputs(want, got) {
		s.Close()
		p.relaxed, p.sessionModel = true, relaxed
		p.o.Log("model has a fixed batch of %d; relaxed it in memory to run batches of %d", fixed, p.o.Batch)
		return nil
	}
	rs.Close()
	p.session, p.fixed, p.runBatch = s, fixed, int(fixed)
	why := "outputs differ"
	if err != nil {
		why = err.Error()
	}
	p.o.Log("model has a fixed batch of %d that its graph depends on (%s); running batches of %d, padding the last", fixed, firstLine(why), fixed)
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func sameOutputs(a, b []Tensor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i].Data) != len(b[i].Data) {
			return false
		}
		for k, x := range a[i].Data {
			y := b[i].Data[k]
			if math.Abs(float64(x-y)) > 1e-4*(1+math.Abs(float64(x))) {
				return false
			}
		}
	}
	return true
}

// sampleJob reads the first n rows of the dataset as a job.
func (p *plan) sampleJob(n int) (*job, error) {
	var b dataset.Batch
	if err := p.ds.Read(0, n, &b); err != nil {
		return nil, fmt.Errorf("reading %s: %w", p.o.Data, err)
	}
	j := &job{}
	p.toJob(j, &b)
	return j, nil
}

// learnShapes runs the teacher on the first rows to learn the number of
// classes, the per-sample shapes of the hidden states and, when not known
// from the graph, whether the scores are probabilities.
func (p *plan) learnShapes() error {
	j, err := p.sampleJob(min(p.ds.Len(), max(p.runBatch, 1)))
	if err != nil {
		return err
	}
	outs, err := p.infer(j)
	if err != nil {
		if p.positions > 0 {
			return p.explainSeqFailure(j, err)
		}
		return err
	}
	n := len(j.rows)
	sc := outs[0]
	if T := p.positions; T > 0 {
		if len(sc.Shape) != 3 || sc.Shape[1] != int64(T) {
			return fmt.Errorf("%w: the teacher takes token ids but its score tensor %q has shape %v, not [N, %d, vocabulary]; name the per-token logits with --output",
				ErrModel, p.src.Tensor, sc.Shape, T)
		}
		p.classes = int(sc.Shape[2])
	} else if len(sc.Shape) < 2 {
		return fmt.Errorf("%w: score tensor %q has shape %v: one value per row is a label, not class scores; name the scores with --output",
			ErrModel, p.src.Tensor, sc.Shape)
	}
	if p.positions == 0 {
		p.classes = len(sc.Data) / n
	}
	if p.classes < 2 {
		return fmt.Errorf("%w: score tensor %q has %d class; distillation needs at least 2", ErrModel, p.src.Tensor, p.classes)
	}
	if p.o.TopK > p.classes {
		return fmt.Errorf("--topk %d is out of range: the teacher has %d classes (use 1..%d, or 0 for all logits)", p.o.TopK, p.classes, p.classes)
	}
	p.kind = p.src.Kind
	if p.kind == "" {
		p.kind = DetectKind(sc.Data, p.classes)
		p.src.Why = strings.TrimPrefix(p.src.Why+fmt.Sprintf("; values look like %s", p.kind), "; ")
	}
	p.src.Kind = p.kind
	dt := formats.Float32
	if p.o.Dtype == "f16" {
		dt = formats.Float16
	}
	for i, name := range p.o.Hidden {
		t := outs[1+i]
		p.hidden = append(p.hidden, formats.TensorSpec{Name: name, Shape: append([]int64(nil), t.Shape[1:]...), Dtype: dt})
	}
	if note := hiddenNote(p.hidden, int64(p.ds.Len()), p.runBatch); note != "" && p.o.Log != nil {
		p.o.Log("%s", note)
	}
	return nil
}

// storedKind is the score kind recorded in the manifest.
func (p *plan) storedKind() string {
	if p.kind == Probs {
		return string(LogProbs) // probabilities are stored as their log
	}
	return string(p.kind)
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}
