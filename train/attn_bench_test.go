package train

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkAttention times Forward and Backward of the half-size
// student's attention (32 windows of 256 tokens, 4 heads on 2 KV heads of
// 12) for several query-block sizes.
func BenchmarkAttention(b *testing.B) {
	const T, seqs = 256, 32
	for _, block := range []int{256, 128, 64, 32} {
		b.Run(fmt.Sprint("block", block), func(b *testing.B) {
			a := NewAttention(T, 4, 2, 12, NewRoPE(T, 4, 12, RoPETheta))
			a.block = block
			rng := rand.New(rand.NewPCG(1, 1))
			x := randMat(rng, seqs*T, a.InSize(), 1)
			dy := randMat(rng, seqs*T, a.OutSize(), 1)
			y := Mat{Rows: seqs * T, Cols: a.OutSize(), Data: make([]float32, seqs*T*a.OutSize())}
			dx := Mat{Rows: seqs * T, Cols: a.InSize(), Data: make([]float32, seqs*T*a.InSize())}
			for b.Loop() {
				a.Forward(y, x)
				a.Backward(dx, dy)
			}
		})
	}
}
