package extract

import (
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// TestHiddenNote checks the note on large cached tensors: one layer of
// stories260K's attention maps at T = 256 (8·256² = 524,288 values per
// window) at --batch 256 gets it, with the sizes as float32 and float16
// and the --batch that keeps a run at 64 MiB (32 windows); its hidden
// states ([256, 64]) and the maps at --batch 32 do not.
func TestHiddenNote(t *testing.T) {
	maps := formats.TensorSpec{Name: "attentions.3", Shape: []int64{8, 256, 256}}
	note := hiddenNote([]formats.TensorSpec{maps}, 1000, 256)
	for _, want := range []string{"attentions.3 [8 256 256]", "524,288 values per row", "2.0 MiB per row as stored", "2.0 GiB for the 1,000 rows",
		"(--dtype f16 halves it)", "a teacher run of 256 rows returns 512.0 MiB", "--batch 32 keeps a run under 64.0 MiB"} {
		if !strings.Contains(note, want) {
			t.Errorf("note lacks %q:\n%s", want, note)
		}
	}
	maps.Dtype = formats.Float16
	note = hiddenNote([]formats.TensorSpec{maps, {Name: "hidden_states.5", Shape: []int64{256, 64}, Dtype: formats.Float16}}, 1000, 256)
	if !strings.Contains(note, "540,672 values per row: 1.0 MiB per row as stored") || strings.Contains(note, "--dtype f16") {
		t.Errorf("float16 note:\n%s", note)
	}
	for _, c := range []struct {
		h     formats.TensorSpec
		batch int
	}{{formats.TensorSpec{Name: "hidden_states.5", Shape: []int64{256, 64}}, 256}, {maps, 32}} {
		if note := hiddenNote([]formats.TensorSpec{c.h}, 1000, c.batch); note != "" {
			t.Errorf("%v at --batch %d: %s", c.h, c.batch, note)
		}
	}
}
