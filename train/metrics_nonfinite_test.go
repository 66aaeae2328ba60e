package train

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// TestEvaluateNonFinite: a validation row with NaN teacher scores is an
// error naming the row, not NaN metrics (which no checkpoint JSON could
// hold).
func TestEvaluateNonFinite(t *testing.T) {
	c := writeSynth(t, t.TempDir(), synth{Rows: 100, Inputs: 5, Classes: 3, Seed: 4, NaNRow: 37})
	s, err := NewStudent(Config{Inputs: 5, InputShape: []int{1, 5}, Hidden: []int{4}, Classes: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Evaluate(context.Background(), s, c, "", 16)
	if err == nil || !strings.Contains(err.Error(), "validation row 37 has NaN or infinite values") {
		t.Errorf("Evaluate on a NaN teacher row: %v", err)
	}
}

// TestPerTokenRefused: a per-token cache (a language model's) is refused
// by name, not misread as per-sample rows.
func TestPerTokenRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := formats.Config{Classes: 7, Positions: 4, HasLabel: true, Inputs: []formats.TensorSpec{{Name: "x", Shape: []int64{4}}}}
	b := &formats.Batch{Rows: []int64{0, 1}, Labels: make([]int64, 8), Logits: make([]float32, 2*4*7), Inputs: map[string][]float32{"x": make([]float32, 8)}}
	c := writeCache(t, dir, formats.Manifest{}, cfg, nil, b)
	_, err := Train(context.Background(), Config{Hidden: []int{3}}, c, &Options{Epochs: 1, Out: filepath.Join(t.TempDir(), "s.ckpt")})
	if err == nil || !strings.Contains(err.Error(), "per-token (4 positions per row") {
		t.Errorf("Train on a per-token cache: %v", err)
	}
}
