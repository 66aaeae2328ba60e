package extract

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedTeachers returns ../shared/teachers (relative to the repository
// root), skipping when it is absent outside CI.
func sharedTeachers(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "teachers"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI has ../shared/teachers, but: %v", err)
		}
		t.Skipf("no %s: %v", dir, err)
	}
	return dir
}

func TestParseModelRejectsGarbage(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":  nil,
		"text":   []byte("hello, I am not a model"),
		"zeros":  make([]byte, 64),
		"binary": {0x08, 0x07, 0x12, 0x03},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseModel(data); !errors.Is(err, ErrModel) {
				t.Fatalf("err = %v, want ErrModel", err)
			}
		})
	}
}

func TestSharedTeachersScores(t *testing.T) {
	dir := sharedTeachers(t)
	tests := []struct {
		file, output, tensor string
		kind                 ScoreKind
		fixed                int64
	}{
		{"mnist8-zoo.onnx", "Plus214_Output_0", "Plus214_Output_0", "", 1},
		{"mnist-lenet5-dynbatch.onnx", "output", "output", "", 0},
		{"mnist-lenet5-b10-softmax.onnx", "output_0", "23", Logits, 10},
		{"iris-rf-skl2onnx.onnx", "output_probability", "probabilities", Probs, 0},
		{"iris2-xgboost-skl2onnx.onnx", "output_probability", "probabilities", Probs, 0},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := LoadModel(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			src, err := m.ChooseScores("")
			if err != nil {
				t.Fatal(err)
			}
			if src.Output != tc.output || src.Tensor != tc.tensor || src.Kind != tc.kind {
				t.Errorf("ChooseScores = %+v; want output %q tensor %q kind %q", src, tc.output, tc.tensor, tc.kind)
			}
			if got := m.FixedBatch(); got != tc.fixed {
				t.Errorf("FixedBatch = %d, want %d", got, tc.fixed)
			}
			if _, _, err := m.WithOutputs([]string{src.Tensor}); err != nil {
				t.Errorf("WithOutputs: %v", err)
			}
		})
	}
}

func TestWithOutputsUnknownSuggests(t *testing.T) {
	m, err := LoadModel(filepath.Join(sharedTeachers(t), "mnist-lenet5-dynbatch.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = m.WithOutputs([]string{"/net/net.10/Relu_outptu_0"})
	if !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), `"/net/net.10/Relu_output_0"`) {
		t.Fatalf("err = %v; want a suggestion of the closest name", err)
	}
}
