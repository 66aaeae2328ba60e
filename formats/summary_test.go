package formats

import "testing"

func TestRawBytesPerSample(t *testing.T) {
	cfg := Config{Classes: 10, HasLabel: true, Hidden: []TensorSpec{{Name: "h", Shape: []int64{2, 3}, Dtype: Float16}}}
	if got := RawBytesPerSample(cfg); got != 8+8+10*4+6*2 {
		t.Errorf("RawBytesPerSample = %d, want %d", got, 8+8+10*4+6*2)
	}
	topk := Config{Classes: 10, TopK: 3, ScoreDtype: Float16}
	if got := RawBytesPerSample(topk); got != 8+3*4+3*2+4 {
		t.Errorf("RawBytesPerSample(top-k) = %d, want %d", got, 8+3*4+3*2+4)
	}
}
