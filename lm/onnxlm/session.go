//go:build cgo

package onnxlm

import (
	"fmt"
	"os"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/lm"
	ort "github.com/yalue/onnxruntime_go"
)

// model is an ONNX language model with its onnxruntime session. One
// session serves every lm.Session of the model (a DynamicAdvancedSession
// takes its tensors per Run), one Step at a time.
type model struct {
	g      *graph
	rt     *extract.Runtime
	sess   *ort.DynamicAdvancedSession
	inputs []string
}

func newModel(g *graph, m *extract.Model, o *Options) (lm.Model, error) {
	data, err := os.ReadFile(m.Path)
	if err != nil {
		return nil, err
	}
	rt, err := extract.NewRuntime(o.Lib)
	if err != nil {
		return nil, err
	}
	inputs, outputs := []string{InputIDs}, []string{Logits}
	if g.layers > 0 {
		inputs = append(inputs, AttentionMask)
		if g.position {
			inputs = append(inputs, PositionIDs)
		}
		for i := range g.layers {
			inputs = append(inputs, fmt.Sprintf(PastKey, i), fmt.Sprintf(PastValue, i))
			outputs = append(outputs, fmt.Sprintf(PresentKey, i), fmt.Sprintf(PresentValue, i))
		}
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("onnxlm: session options: %w", err)
	}
	defer so.Destroy()
	if o.Threads > 0 {
		if err := so.SetIntraOpNumThreads(o.Threads); err != nil {
			rt.Close()
			return nil, fmt.Errorf("onnxlm: %d threads: %w", o.Threads, err)
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			rt.Close()
			return nil, err
		}
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(data, inputs, outputs, so)
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("%w: %s: onnxruntime cannot load it: %v", lm.ErrModel, m.Path, err)
	}
	mod := &model{g: g, rt: rt, sess: sess, inputs: inputs}
	if g.info.Vocab <= 0 { // a symbolic vocabulary axis: one token tells
		if err := mod.probeVocab(); err != nil {
			mod.Close()
			return nil, err
		}
	}
	return mod, nil
}

// probeVocab learns the vocabulary size from the logits of one BOS-like
// token (id 0) at position 0.
func (m *model) probeVocab() error {
	s, err := m.Start(1) // with Vocab 0, Step checks no ids or logit counts
	if err != nil {
		return err
	}
	defer s.Close()
	var lg []float32
	if f, ok := s.(*fullSession); ok {
		lg, err = f.run([]int64{0}, 1, 1)
	} else {
		lg, err = s.Step([]int64{0}, 1, []int64{1}, []int64{0})
	}
	if err != nil {
		return fmt.Errorf("%w: %s: the logits' vocabulary axis is symbolic and a one-token run failed: %v", lm.ErrModel, m.g.info.Path, err)
	}
	m.g.info.Vocab = len(lg)
	return nil
}

func (m *model) Info() lm.Info { return m.g.info }

func (m *model) Close() error {
	if m.sess == nil {
		return nil
	}
	err := m.sess.Destroy()
	m.sess = nil
	if e := m.rt.Close(); err == nil {
		err = e
	}
	return err
}

func (m *model) Start(batch int) (lm.Session, error) {
	if m.sess == nil {
		return nil, errClosed
	}
	if batch < 1 {
		return nil, fmt.Errorf("onnxlm: batch %d, want ≥ 1", batch)
	}
	if m.g.layers == 0 {
		return &fullSession{m: m, batch: batch, ids: make([][]int64, batch), mask: make([][]int64, batch)}, nil
	}
	return &kvSession{m: m, batch: batch}, nil
}

// checkStep validates a Step's arguments against a batch and its past.
func checkStep(batch, past, vocab int, ids []int64, s int, mask, pos []int64) error {
	switch {
	case s < 1 || len(ids) != batch*s:
		return fmt.Errorf("onnxlm: Step: %d ids for batch %d × %d new tokens", len(ids), batch, s)
	case len(mask) != batch*(past+s):
		return fmt.Errorf("onnxlm: Step: mask of %d for batch %d × (%d past + %d new)", len(mask), batch, past, s)
	case len(pos) != batch*s:
		return fmt.Errorf("onnxlm: Step: %d positions for batch %d × %d new tokens", len(pos), batch, s)
	}
	for _, id := range ids {
		if id < 0 || (vocab > 0 && id >= int64(vocab)) {
			return fmt.Errorf("onnxlm: Step: token id %d outside the vocabulary [0, %d)", id, vocab)
		}
	}
	return nil
}

// kvSession feeds a decoder with past: each Step passes the previous
// Step's present.* values back as past_key_values.*, without copying them.
type kvSession struct {
	m           *model
	batch, past int
	present     []ort.Value // [2·layers], nil before the first Step
	logits      []float32
	closed      bool
}

func (s *kvSession) Past() int { return s.past }

func (s *kvSession) Step(ids []int64, n int, mask, pos []int64) ([]float32, error) {
	g := s.m.g
	if s.closed || s.m.sess == nil {
		return nil, errClosed
	}
	if err := checkStep(s.batch, s.past, g.info.Vocab, ids, n, mask, pos); err != nil {
		return nil, err
	}
	if mp := g.info.MaxPositions; mp > 0 {
		for _, p := range pos {
			if p < 0 || p >= int64(mp) {
				return nil, fmt.Errorf("onnxlm: Step: position %d outside the model's [0, %d)", p, mp)
			}
		}
	}
	B := int64(s.batch)
	var owned []ort.Value // the tensors made here, destroyed after Run
	defer func() {
		for _, v := range owned {
			v.Destroy()
		}
	}()
	newInt := func(data []int64, dims ...int64) (ort.Value, error) {
		v, err := ort.NewTensor(ort.NewShape(dims...), data)
		if err == nil {
			owned = append(owned, v)
		}
		return v, err
	}
	in := make([]ort.Value, 0, len(s.m.inputs))
	for _, t := range []struct {
		data []int64
		cols int
		use  bool
	}{{ids, n, true}, {mask, s.past + n, true}, {pos, n, g.position}} {
		if !t.use {
			continue
		}
		v, err := newInt(t.data, B, int64(t.cols))
		if err != nil {
			return nil, fmt.Errorf("onnxlm: input tensor: %w", err)
		}
		in = append(in, v)
	}
	if s.present == nil {
		kvh, hd := int64(g.kvHeads), int64(g.headDim)
		if kvh <= 0 || hd <= 0 {
			return nil, fmt.Errorf("%w: the past inputs' kv_heads and head_dim are symbolic; the model must declare them", lm.ErrModel)
		}
		for range 2 * g.layers {
			v, err := ort.NewTensor(ort.NewShape(B, kvh, 0, hd), []float32{})
			if err != nil {
				return nil, fmt.Errorf("onnxlm: empty past: %w", err)
			}
			owned = append(owned, v)
			in = append(in, v)
		}
	} else {
		in = append(in, s.present...)
	}
	out := make([]ort.Value, 1+2*g.layers)
	if err := s.m.sess.Run(in, out); err != nil {
		for _, v := range out {
			if v != nil {
				v.Destroy()
			}
		}
		return nil, fmt.Errorf("onnxlm: onnxruntime run: %w", err)
	}
	owned = append(owned, s.present...) // the old past goes once Run is done
	s.present = out[1:]
	s.past += n
	lg, ok := out[0].(*ort.Tensor[float32])
	if !ok {
		out[0].Destroy()
		return nil, fmt.Errorf("onnxlm: output %q is not a float32 tensor", Logits)
	}
	s.logits = append(s.logits[:0], lg.GetData()...)
	lg.Destroy()
	if want := s.batch * n * g.info.Vocab; want > 0 && len(s.logits) != want {
		return nil, fmt.Errorf("onnxlm: %d logits for batch %d × %d × vocab %d", len(s.logits), s.batch, n, g.info.Vocab)
	}
	return s.logits, nil
}

func (s *kvSession) Close() error {
	for _, v := range s.present {
		v.Destroy()
	}
	s.present, s.closed = nil, true
	return nil
}

// fullSession re-runs a full-sequence model over each row's prefix. Rows
// without padding that have the same prefix length run as one batch; a
// padded row runs alone on its unpadded tokens (the positions a
// full-sequence model assumes, 0.., are the Hugging Face rule's for that
// row). Logits of pad positions are zero.
type fullSession struct {
	m         *model
	batch     int
	past      int
	ids, mask [][]int64 // per row, every token fed so far
	logits    []float32
	closed    bool
}

func (s *fullSession) Past() int { return s.past }

func (s *fullSession) Step(ids []int64, n int, mask, pos []int64) ([]float32, error) {
	V := s.m.g.info.Vocab
	if s.closed || s.m.sess == nil {
		return nil, errClosed
	}
	if err := checkStep(s.batch, s.past, V, ids, n, mask, pos); err != nil {
		return nil, err
	}
	total := s.past + n
	if mp := s.m.g.info.MaxPositions; mp > 0 && total > mp {
		return nil, fmt.Errorf("onnxlm: Step: %d tokens in a sequence, the model takes at most %d", total, mp)
	}
	padded := false
	for b := range s.batch {
		s.ids[b] = append(s.ids[b], ids[b*n:(b+1)*n]...)
		s.mask[b] = append(s.mask[b][:0], mask[b*total:(b+1)*total]...)
		for _, m := range s.mask[b] {
			padded = padded || m == 0
		}
	}
	s.past = total
	s.logits = grow(s.logits, s.batch*n*V)
	if !padded {
		flat := make([]int64, 0, s.batch*total)
		for b := range s.batch {
			flat = append(flat, s.ids[b]...)
		}
		out, err := s.run(flat, s.batch, total)
		if err != nil {
			return nil, err
		}
		for b := range s.batch {
			copy(s.logits[b*n*V:(b+1)*n*V], out[(b*total+total-n)*V:(b+1)*total*V])
		}
		return s.logits, nil
	}
	for b := range s.batch {
		var keep []int64
		var slot []int // for each kept token, its column
		for j, m := range s.mask[b] {
			if m != 0 {
				keep, slot = append(keep, s.ids[b][j]), append(slot, j)
			}
		}
		dst := s.logits[b*n*V : (b+1)*n*V]
		clear(dst)
		if len(keep) == 0 {
			continue
		}
		out, err := s.run(keep, 1, len(keep))
		if err != nil {
			return nil, err
		}
		for k, j := range slot {
			if t := j - (total - n); t >= 0 {
				copy(dst[t*V:(t+1)*V], out[k*V:(k+1)*V])
			}
		}
	}
	return s.logits, nil
}

// run runs the model on ids [rows, cols] and returns its logits.
func (s *fullSession) run(ids []int64, rows, cols int) ([]float32, error) {
	in, err := ort.NewTensor(ort.NewShape(int64(rows), int64(cols)), ids)
	if err != nil {
		return nil, fmt.Errorf("onnxlm: input tensor: %w", err)
	}
	defer in.Destroy()
	out := []ort.Value{nil}
	if err := s.m.sess.Run([]ort.Value{in}, out); err != nil {
		return nil, fmt.Errorf("onnxlm: onnxruntime run: %w", err)
	}
	defer out[0].Destroy()
	lg, ok := out[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("onnxlm: output %q is not a float32 tensor", Logits)
	}
	d := lg.GetData()
	if V := s.m.g.info.Vocab; V > 0 && len(d) != rows*cols*V {
		return nil, fmt.Errorf("onnxlm: %d logits for %d × %d × vocab %d", len(d), rows, cols, s.m.g.info.Vocab)
	}
	return d, nil
}

func (s *fullSession) Close() error { s.closed = true; return nil }

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}
