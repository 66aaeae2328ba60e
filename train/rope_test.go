package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRoPEHuggingFace checks RoPE against Hugging Face Llama's formula,
// written out in float64 as transformers' apply_rotary_pos_emb does it:
// inv_freq_i = θ^(−2i/d), freqs = pos·inv_freq, emb = cat(freqs, freqs),
// q·cos(emb) + rotate_half(q)·sin(emb), rotate_half(q) = cat(−q₂, q₁) (q₁,
// q₂ the halves of a head). Position 0 is the identity, every position
// keeps each head's norm, and Backward inverts Forward.
func TestRoPEHuggingFace(t *testing.T) {
	const T, heads, d, n = 7, 3, 8, 2 * 7
	r := NewRoPE(T, heads, d, RoPETheta)
	rng := rand.New(rand.NewPCG(3, 4))
	x := randMat(rng, n, heads*d, 1)
	y := Mat{Rows: n, Cols: heads * d, Data: make([]float32, n*heads*d)}
	r.Forward(y, x)
	for row := range n {
		pos := float64(row % T)
		for h := range heads {
			q := x.Data[row*heads*d+h*d : row*heads*d+(h+1)*d]
			got := y.Data[row*heads*d+h*d : row*heads*d+(h+1)*d]
			var n0, n1 float64
			for j := range d {
				emb := pos * math.Pow(RoPETheta, -2*float64(j%(d/2))/d)
				var rot float64 // rotate_half(q)_j
				if j < d/2 {
					rot = -float64(q[j+d/2])
				} else {
					rot = float64(q[j-d/2])
				}
				want := float64(q[j])*math.Cos(emb) + rot*math.Sin(emb)
				if math.Abs(float64(got[j])-want) > 1e-5 {
					t.Fatalf("row %d head %d dim %d: %v, Hugging Face %v", row, h, j, got[j], want)
				}
				if pos == 0 && got[j] != q[j] {
					t.Fatalf("position 0 moved dim %d: %v → %v", j, q[j], got[j])
				}
				n0, n1 = n0+float64(q[j])*float64(q[j]), n1+float64(got[j])*float64(got[j])
			}
			if math.Abs(n0-n1) > 1e-4*n0 {
				t.Fatalf("row %d head %d: norm² %v → %v", row, h, n0, n1)
			}
		}
	}
	back := Mat{Rows: n, Cols: heads * d, Data: append([]float32(nil), y.Data...)}
	r.Backward(back, back) // in place
	for i, v := range back.Data {
		if math.Abs(float64(v-x.Data[i])) > 1e-5 {
			t.Fatalf("Backward of Forward: value %d is %v, was %v", i, v, x.Data[i])
		}
	}
}

// TestRMSNormLlama checks RMSNorm against Llama's formula in float64:
// x / √(mean(x²) + ε) · γ.
func TestRMSNormLlama(t *testing.T) {
	const d, n = 10, 4
	l := NewRMSNorm("norm", d)
	NewParams(l.Params()...)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range l.Gamma.Data {
		l.Gamma.Data[i] = float32(rng.NormFloat64())
	}
	x := randMat(rng, n, d, 3)
	y := Mat{Rows: n, Cols: d, Data: make([]float32, n*d)}
	l.Forward(y, x)
	for r := range n {
		var ss float64
		for j := range d {
			ss += float64(x.Data[r*d+j]) * float64(x.Data[r*d+j])
		}
		s := 1 / math.Sqrt(ss/d+RMSNormEps)
		for j := range d {
			if want := float64(x.Data[r*d+j]) * s * float64(l.Gamma.Data[j]); math.Abs(float64(y.Data[r*d+j])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("row %d dim %d: %v, want %v", r, j, y.Data[r*d+j], want)
			}
		}
	}
}

// TestRMSNormGainGradientChunks checks dγ over 600 rows (three partial
// sums of rmsChunk rows, the last short) against a float64 sum, on 1 and
// 3 threads with the same bits.
func TestRMSNormGainGradientChunks(t *testing.T) {
	defer SetThreads(Threads())
	const d, n = 5, 600
	rng := rand.New(rand.NewPCG(3, 3))
	x, dy := randMat(rng, n, d, 1), randMat(rng, n, d, 1)
	var grads [][]float32
	for _, threads := range []int{1, 3} {
		SetThreads(threads)
		l := NewRMSNorm("n", d)
		NewParams(l.Params()...)
		l.Init()
		y := Mat{Rows: n, Cols: d, Data: make([]float32, n*d)}
		l.Forward(y, x)
		l.Backward(Mat{}, dy)
		grads = append(grads, slices.Clone(l.Gamma.Grad))
	}
	if !slices.Equal(grads[0], grads[1]) {
		t.Fatalf("dγ on 1 thread %v, on 3 %v", grads[0], grads[1])
	}
	for j := range d {
		var want float64
		for r := range n {
			var ss float64
			for k := range d {
				ss += float64(x.Data[r*d+k]) * float64(x.Data[r*d+k])
			}
			want += float64(dy.Data[r*d+j]) * float64(x.Data[r*d+j]) / math.Sqrt(ss/d+RMSNormEps)
		}
		if math.Abs(float64(grads[0][j])-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Fatalf("dγ[%d] = %v, want %v", j, grads[0][j], want)
		}
	}
}

// TestRoPEAllocs: rotating a batch, split over threads, allocates nothing.
func TestRoPEAllocs(t *testing.T) {
	defer SetThreads(Threads())
	SetThreads(2)
	r := NewRoPE(64, 4, 12, RoPETheta)
	x := randMat(rand.New(rand.NewPCG(1, 1)), 8*64, r.InSize(), 1)
	if allocs := testing.AllocsPerRun(10, func() { r.rotateBlock(x.Data, x.Data, x.Rows, r.InSize(), 4, 1) }); allocs != 0 {
		t.Errorf("%v allocations per rotation", allocs)
	}
}
