package extract

import (
	"math"
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

func TestParsers(t *testing.T) {
	if v, err := ParseNumber("1/255"); err != nil || math.Abs(v-1.0/255) > 1e-15 {
		t.Errorf("ParseNumber(1/255) = %v, %v", v, err)
	}
	for _, bad := range []string{"", "x", "1/0", "1/x"} {
		if _, err := ParseNumber(bad); err == nil {
			t.Errorf("ParseNumber(%q) accepted", bad)
		}
	}
	if s, err := ParseShape("1,28,28"); err != nil || len(s) != 3 || s[2] != 28 {
		t.Errorf("ParseShape = %v, %v", s, err)
	}
	for _, bad := range []string{"1,,2", "0,3", "-1,-1", "-2", "a"} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("ParseShape(%q) accepted", bad)
		}
	}
	if i, n, err := ParseShard("2/4"); err != nil || i != 2 || n != 4 {
		t.Errorf("ParseShard(2/4) = %d, %d, %v", i, n, err)
	}
	for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0", "1/2/3"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	if err := (Preprocess{Mean: []float64{1, 2}}).Validate(3); err == nil {
		t.Error("2 means for 3 channels accepted")
	}
	if err := (Preprocess{Std: []float64{0}}).Validate(1); err == nil {
		t.Error("std 0 accepted")
	}
}
