package train

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// TestLoaderEpochs checks that every epoch yields every row exactly once,
// in full batches except the last, with its own inputs and targets, in an
// order that differs between epochs — both with the whole cache resident
// and when streaming windows of 1 and 3 units (of 64 rows; 600 rows).
func TestLoaderEpochs(t *testing.T) {
	data := smallCache(t, filepath.Join(t.TempDir(), "c"), nil)
	// Reference: row id → first input value and label.
	ref := map[int64][2]float32{}
	for b, err := range data.All() {
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range b.Rows {
			ref[r] = [2]float32{b.Inputs["x"][i*6], float32(b.Labels[i])}
		}
	}
	for _, window := range []int{0, 1, 3} {
		ld, err := newLoader(data, "", []string{"h"}, true, true, 50, window, 0)
		if err != nil {
			t.Fatal(err)
		}
		if window == 0 && ld.resident == nil || window > 0 && (ld.resident != nil || ld.slots != 2*window) {
			t.Fatalf("window %d: resident %v, slots %d", window, ld.resident != nil, ld.slots)
		}
		var orders [][]int64
		for e := 1; e <= 2; e++ {
			var order []int64
			batches := 0
			err := ld.run(context.Background(), rand.New(rand.NewPCG(1, shuffleStream(e))), func(b *batch) error {
				batches++
				if b.n != 50 && len(order)+b.n != 600 {
					t.Errorf("batch %d has %d rows", batches, b.n)
				}
				for i := range b.n {
					r := b.rows[i]
					if want := ref[r]; b.x[i*6] != want[0] || float32(b.t.Labels[i]) != want[1] || len(b.t.Logits) < (i+1)*4 || len(b.hidden[0]) < (i+1)*5 {
						t.Fatalf("row %d: gathered input %v label %d, want %v", r, b.x[i*6], b.t.Labels[i], want)
					}
					order = append(order, r)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sorted := slices.Clone(order)
			slices.Sort(sorted)
			for i, r := range sorted {
				if r != int64(i) {
					t.Fatalf("window %d epoch %d: rows are not each of 0..599 once", window, e)
				}
			}
			orders = append(orders, order)
		}
		if slices.Equal(orders[0], orders[1]) {
			t.Errorf("window %d: two epochs in the same order", window)
		}
		ordered := 0
		for i := 1; i < 600; i++ {
			if orders[0][i] == orders[0][i-1]+1 {
				ordered++
			}
		}
		if ordered > 100 {
			t.Errorf("window %d: %d of 599 neighbours in cache order; not shuffled", window, ordered)
		}
	}
}
