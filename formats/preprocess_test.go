package formats

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
)

func TestPreprocessApply(t *testing.T) {
	// Two samples, two channels of two values each.
	data := []float32{0, 255, 51, 102, 255, 0, 102, 51}
	p := Preprocess{Scale: 1.0 / 255, Mean: []float64{0.5, 0.1}, Std: []float64{0.5, 0.2}}
	p.Apply(data, 2, 2)
	want := []float64{
		(0.0 - 0.5) / 0.5, (1.0 - 0.5) / 0.5, (0.2 - 0.1) / 0.2, (0.4 - 0.1) / 0.2,
		(1.0 - 0.5) / 0.5, (0.0 - 0.5) / 0.5, (0.4 - 0.1) / 0.2, (0.2 - 0.1) / 0.2,
	}
	for i := range want {
		if math.Abs(float64(data[i])-want[i]) > 1e-6 {
			t.Errorf("data[%d] = %v, want %v", i, data[i], want[i])
		}
	}
}

// TestPreprocessApplyGrouping checks that Apply gives the same bits whether
// samples are transformed together or one call at a time: train recomputes
// a cache's inputs in other groupings than extract fed them.
func TestPreprocessApplyGrouping(t *testing.T) {
	p := Preprocess{Scale: 1.0 / 255, Mean: []float64{0.1307}, Std: []float64{0.3081}}
	shape := []int64{1, 2, 3}
	all := make([]float32, 5*6)
	for i := range all {
		all[i] = float32(i * 7 % 256)
	}
	one := slices.Clone(all)
	p.Apply(all, 5, Channels(shape))
	for i := 0; i < 5; i++ {
		p.Apply(one[i*6:(i+1)*6], 1, Channels(shape))
	}
	for i := range all {
		if math.Float32bits(all[i]) != math.Float32bits(one[i]) {
			t.Fatalf("value %d: %v together, %v alone", i, all[i], one[i])
		}
	}
}

func TestPreprocessValidateDescribe(t *testing.T) {
	if err := (Preprocess{Mean: []float64{1, 2}}).Validate(3); err == nil {
		t.Error("2 means for 3 channels accepted")
	}
	if err := (Preprocess{Std: []float64{0}}).Validate(1); err == nil {
		t.Error("std 0 accepted")
	}
	if err := (Preprocess{Mean: []float64{1, 2, 3}, Std: []float64{1}}).Validate(3); err != nil {
		t.Error(err)
	}
	p := Preprocess{Scale: 0.5, Mean: []float64{0.1, 0.2}, Std: []float64{2}, Shape: []int64{2, 14, 28}}
	want := []string{"scale 0.5", "subtract mean 0.1,0.2", "divide by std 2", "reshape [2,14,28]"}
	if got := p.Describe(); !slices.Equal(got, want) {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if !(Preprocess{Scale: 1}).IsZero() || p.IsZero() {
		t.Error("IsZero")
	}
	if Channels([]int64{3, 4, 4}) != 3 || Channels([]int64{784}) != 1 || Channels(nil) != 1 {
		t.Error("Channels")
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"scale":0.5,"mean":[0.1,0.2],"std":[2],"shape":[2,14,28]}` {
		t.Errorf("JSON %s", data)
	}
	var back Preprocess
	if err := json.Unmarshal(data, &back); err != nil || back.Describe()[3] != want[3] || back.Scale != 0.5 {
		t.Errorf("round trip %+v, %v", back, err)
	}
}

func TestSolveShape(t *testing.T) {
	for _, tc := range []struct {
		in      []int64
		width   int64
		want    string
		known   int64
		several bool
	}{
		{[]int64{1, 28, 28}, 784, "[1,28,28]", 784, false},
		{[]int64{1, -1, 28}, 784, "[1,28,28]", 784, false},
		{[]int64{-1}, 4, "[4]", 4, false},
		{[]int64{3, -1}, 784, "[3,?]", 3, false}, // 784 is no multiple of 3
		{[]int64{-1, -1}, 784, "", 0, true},
		{[]int64{1, 28, 28}, 4, "[1,28,28]", 784, false},
	} {
		got, known, several := SolveShape(tc.in, tc.width)
		if several != tc.several || known != tc.known || (!several && shapeString(got) != tc.want) {
			t.Errorf("SolveShape(%v, %d) = %v, %d, %v; want %s, %d, %v", tc.in, tc.width, got, known, several, tc.want, tc.known, tc.several)
		}
	}
}
