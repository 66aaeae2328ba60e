//go:build cgo

package e2e

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/train"
)

// TestTransformerMatchesONNXTeacher loads stories260K in the Hugging Face
// layout (stories260K-hf) into a Go Transformer and runs three TinyStories
// windows of 64 tokens through it and through the third-party
// stories260K.onnx in onnxruntime (which the seq README measured within
// 3.1e-5 of PyTorch): the logits agree within 1e-4 × max(1, |logit|).
func TestTransformerMatchesONNXTeacher(t *testing.T) {
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	const T, N, V = 64, 3, 512
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
		if stream = append(stream, ids...); len(stream) >= N*T {
			break
		}
	}
	ids := make([]int32, N*T)
	x := make([]float32, N*T)
	for i := range ids {
		ids[i], x[i] = int32(stream[i]), float32(stream[i])
	}

	m, err := train.LoadHFLlama(filepath.Join(seq, "stories260K-hf"), T)
	if err != nil {
		t.Fatal(err)
	}
	got := train.Mat{Rows: N * T, Cols: V, Data: make([]float32, N*T*V)}
	m.Forward(got, ids)

	om, err := extract.LoadModel(filepath.Join(seq, "stories260K.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	model, fetch, err := om.WithOutputs([]string{"logits"})
	if err != nil {
		t.Fatal(err)
	}
	want := runONNX(t, rt, model, "input_ids", []int64{N, T}, x, fetch...)[0].Data
	if len(want) != len(got.Data) {
		t.Fatalf("onnxruntime gave %d logits, Go %d", len(want), len(got.Data))
	}
	worst := 0.0
	for i, w := range want {
		d := math.Abs(float64(got.Data[i]-w)) / math.Max(1, math.Abs(float64(w)))
		worst = math.Max(worst, d)
		if d > 1e-4 {
			t.Fatalf("logit %d (row %d): Go %v, onnxruntime %v", i, i/V, got.Data[i], w)
		}
	}
	t.Logf("max |Δlogit| / max(1, |logit|) = %.2g over %d logits", worst, len(want))
}
