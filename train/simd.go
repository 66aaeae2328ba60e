package train

import "math"

// Elementwise kernels of the hot loop. Each has a portable Go version
// here; simd_amd64.go runs AVX2/FMA assembly for the bulk of the slice on
// CPUs that have it (the results may differ from the Go version in the
// last bit, as FMA rounds once).

// adamConsts are the per-step constants of an AdamW update, laid out for
// the assembly: β₁, 1−β₁, β₂, 1−β₂, 1−lr·λ, lr/(1−β₁ᵗ), 1/√(1−β₂ᵗ), ε.
type adamConsts [8]float32

// adamwGo applies the AdamW update (see AdamWOptimizer) to w, m, v from g.
func adamwGo(w, g, m, v []float32, k *adamConsts) {
	b1, a1, b2, a2, decay, c1, c2, eps := k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i := range w {
		gi := g[i]
		mi := b1*m[i] + a1*gi
		vi := b2*v[i] + a2*gi*gi
		m[i], v[i] = mi, vi
		w[i] = w[i]*decay - c1*mi/(float32(math.Sqrt(float64(vi)))*c2+eps)
	}
}

// biasReLUGo sets y = max(y + b, 0) (NaN propagates).
func biasReLUGo(y, b []float32) {
	b = b[:len(y)]
	for j := range y {
		y[j] = max(y[j]+b[j], 0)
	}
}

// biasAddGo sets y += b.
func biasAddGo(y, b []float32) {
	b = b[:len(y)]
	for j := range y {
		y[j] += b[j]
	}
}

// reluBackSumGo zeroes d where y <= 0 (ReLU's derivative from its output)
// and adds d to db.
func reluBackSumGo(d, y, db []float32) {
	y, db = y[:len(d)], db[:len(d)]
	for j, v := range y {
		if !(v > 0) {
			d[j] = 0
		}
		db[j] += d[j]
	}
}

// addToGo sets db += d.
func addToGo(db, d []float32) {
	d = d[:len(db)]
	for j := range db {
		db[j] += d[j]
	}
}
