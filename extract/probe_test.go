package extract

import (
	"path/filepath"
	"testing"
)

func TestProbeSharedTeachers(t *testing.T) {
	dir := sharedTeachers(t)
	rt := requireRuntime(t)
	tests := []struct {
		file, penultimate string
		shape             []int64
	}{
		{"mnist8-zoo.onnx", "Pooling160_Output_0_reshape0", []int64{1, 256}},
		{"mnist-lenet5-dynbatch.onnx", "/net/net.10/Relu_output_0", []int64{1, 84}},
		{"mnist-lenet5-b10-softmax.onnx", "22", []int64{10, 84}},
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
			pen := m.Penultimate(src.Tensor)
			if pen != tc.penultimate {
				t.Errorf("Penultimate = %q, want %q", pen, tc.penultimate)
			}
			all, err := rt.Probe(m, SessionOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, ti := range all {
				if ti.Name == pen {
					found = true
					if shapeString(ti.Shape) != shapeString(tc.shape) {
						t.Errorf("probed shape of %s = %v, want %v", pen, ti.Shape, tc.shape)
					}
				}
			}
			if !found {
				t.Errorf("%s not among probed tensors", pen)
			}
		})
	}
}
