package lm

import (
	"slices"
	"testing"
)

func TestLeftPadPositions(t *testing.T) {
	ids, mask, L := LeftPad([][]int64{{1, 5, 6}, {1}, {1, 7}}, 0)
	if L != 3 || !slices.Equal(ids, []int64{1, 5, 6, 0, 0, 1, 0, 1, 7}) || !slices.Equal(mask, []int64{1, 1, 1, 0, 0, 1, 0, 1, 1}) {
		t.Fatalf("LeftPad: L %d ids %v mask %v", L, ids, mask)
	}
	// Prefill: pads at position 1, the real tokens from 0.
	if got := Positions(mask, 3, 3); !slices.Equal(got, []int64{0, 1, 2, 1, 1, 0, 1, 0, 1}) {
		t.Errorf("prefill positions %v", got)
	}
	// One decode step: the mask grows by a column of ones.
	grown := []int64{1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1}
	if got := Positions(grown, 3, 1); !slices.Equal(got, []int64{3, 1, 2}) {
		t.Errorf("decode positions %v", got)
	}
}
