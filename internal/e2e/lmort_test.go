//go:build cgo

package e2e

import (
	"fmt"
	"testing"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/internal/onnxpb"
	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

// ortDecoder runs an ONNX decoder with past (the layout export.MarshalLM
// writes and stories260K-kv.onnx has) through onnxruntime directly, one
// call at a time, keeping the cache between calls as lm.Session does.
type ortDecoder struct {
	t                  testing.TB
	sess               *ort.DynamicAdvancedSession
	layers, kv, hd, vb int
	batch, past        int
	cache              []ort.Value // present of the last call: key, value per layer
	mask               []int64     // [batch, past] fed so far
}

// newORTDecoder opens model (bytes) with one intra-op thread.
func newORTDecoder(t testing.TB, model []byte, layers, kvHeads, headDim, vocab int) *ortDecoder {
	t.Helper()
	in := []string{export.InputIDsName, export.AttentionMaskName, export.PositionIDsName}
	out := []string{export.LogitsName}
	for l := range layers {
		in = append(in, fmt.Sprintf(export.PastKeyNames, l), fmt.Sprintf(export.PastValueNames, l))
		out = append(out, fmt.Sprintf(export.PresentKeyNames, l), fmt.Sprintf(export.PresentValueNames, l))
	}
	so := oneThread(t)
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, in, out, so)
	if err != nil {
		t.Fatalf("onnxruntime cannot load the model: %v", err)
	}
	d := &ortDecoder{t: t, sess: sess, layers: layers, kv: kvHeads, hd: headDim, vb: vocab}
	t.Cleanup(d.close)
	return d
}

// start begins a batch with an empty past.
func (d *ortDecoder) start(batch int) {
	d.release()
	d.batch, d.past, d.mask = batch, 0, nil
	for range 2 * d.layers {
		v, err := ort.NewTensor(ort.NewShape(int64(batch), int64(d.kv), 0, int64(d.hd)), []float32{})
		if err != nil {
			d.t.Fatal(err)
		}
		d.cache = append(d.cache, v)
	}
}

// step feeds ids [batch, s] with newMask [batch, s] (appended to the
// mask of the tokens fed before) at positions pos [batch, s] and returns
// the logits [batch, s, vocab].
func (d *ortDecoder) step(ids []int64, s int, newMask, pos []int64) []float32 {
	d.t.Helper()
	B := d.batch
	total := d.past + s
	mask := make([]int64, 0, B*total)
	for b := range B {
		mask = append(mask, d.mask[b*d.past:(b+1)*d.past]...)
		mask = append(mask, newMask[b*s:(b+1)*s]...)
	}
	idsT, err := ort.NewTensor(ort.NewShape(int64(B), int64(s)), ids)
	if err != nil {
		d.t.Fatal(err)
	}
	maskT, err := ort.NewTensor(ort.NewShape(int64(B), int64(total)), mask)
	if err != nil {
		d.t.Fatal(err)
	}
	posT, err := ort.NewTensor(ort.NewShape(int64(B), int64(s)), pos)
	if err != nil {
		d.t.Fatal(err)
	}
	defer idsT.Destroy()
	defer maskT.Destroy()
	defer posT.Destroy()
	in := append([]ort.Value{idsT, maskT, posT}, d.cache...)
	out := make([]ort.Value, 1+2*d.layers)
	if err := d.sess.Run(in, out); err != nil {
		d.t.Fatalf("onnxruntime: %v", err)
	}
	d.release()
	d.cache = out[1:]
	d.past, d.mask = total, mask
	lt := out[0].(*ort.Tensor[float32])
	logits := append([]float32(nil), lt.GetData()...)
	lt.Destroy()
	if len(logits) != B*s*d.vb {
		d.t.Fatalf("logits: %d values, want %d×%d×%d", len(logits), B, s, d.vb)
	}
	return logits
}

// presentShape returns the shape of layer 0's present key.
func (d *ortDecoder) presentShape() []int64 {
	return d.cache[0].GetShape()
}

func (d *ortDecoder) release() {
	for _, v := range d.cache {
		v.Destroy()
	}
	d.cache = nil
}

func (d *ortDecoder) close() {
	d.release()
	if d.sess != nil {
		d.sess.Destroy()
		d.sess = nil
	}
}

// oneThread returns session options of one intra-op and one inter-op
// thread.
func oneThread(t testing.TB) *ort.SessionOptions {
	t.Helper()
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := so.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	return so
}

// ortFull runs a full-sequence model input_ids [B, S] → logits [B, S, V].
func ortFull(t testing.TB, model []byte, ids []int64, B, S int) []float32 {
	t.Helper()
	so := oneThread(t)
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{export.InputIDsName}, []string{export.LogitsName}, so)
	if err != nil {
		t.Fatalf("onnxruntime cannot load the model: %v", err)
	}
	defer sess.Destroy()
	x, err := ort.NewTensor(ort.NewShape(int64(B), int64(S)), ids)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	out := []ort.Value{nil}
	if err := sess.Run([]ort.Value{x}, out); err != nil {
		t.Fatalf("onnxruntime: %v", err)
	}
	defer out[0].Destroy()
	return append([]float32(nil), out[0].(*ort.Tensor[float32]).GetData()...)
}

// nodeCount returns the number of nodes of an ONNX model.
func nodeCount(t testing.TB, model []byte) int {
	t.Helper()
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(model, &m); err != nil {
		t.Fatal(err)
	}
	return len(m.GetGraph().GetNode())
}
