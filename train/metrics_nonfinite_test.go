package train

import (
	"context"
	"strings"
	"testing"
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
