package train

// Kernels of the convolutional layers. Each has a portable Go version
// here; convkern_amd64.go runs AVX2/FMA assembly (convkern_amd64.s) for
// the bulk of the slice, a multiple of 8 values, and the Go version for
// the rest. As with simd.go, the two may differ in the last bit (FMA
// rounds once; the assembly sums in 8-lane partial sums), but which one
// computes a value depends only on the slice lengths, never on the
// thread count.

// tapsGo sets dst[q] = Σ_t w[t]·src[q+offs[t]] for every q < len(dst),
// in tap order, or adds the sum to dst[q] if acc: a correlation with the
// taps (offsets into src) of a kernel. It panics if src is too short.
func tapsGo(dst, src []float32, offs []int32, w []float32, acc bool) {
	w = w[:len(offs)]
	for q := range dst {
		var s float32
		if acc {
			s = dst[q]
		}
		for t, o := range offs {
			s += w[t] * src[q+int(o)]
		}
		dst[q] = s
	}
}

// dotGo returns Σ x[i]·y[i].
func dotGo(x, y []float32) float32 {
	y = y[:len(x)]
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// dotTapsGo adds Σ_q dy[q]·x[q + offs[t]] to out[t] for every tap t:
// the dot products of a direct convolution's weight gradient.
func dotTapsGo(out, dy, x []float32, offs []int32) {
	for t, o := range offs {
		out[t] += dotGo(dy, x[o:])
	}
}

// sumGo returns Σ x[i].
func sumGo(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}

// sqDevGo returns Σ (x[i] − m)².
func sqDevGo(x []float32, m float32) float32 {
	var s float32
	for _, v := range x {
		d := v - m
		s += d * d
	}
	return s
}

// dotDevGo returns Σ dy[i] and Σ dy[i]·(x[i] − m).
func dotDevGo(dy, x []float32, m float32) (sdy, sdyx float32) {
	x = x[:len(dy)]
	for i, g := range dy {
		sdy += g
		sdyx += g * (x[i] - m)
	}
	return sdy, sdyx
}

// dotDevMaskGo is clampMaskGo(dy, dy, y, lo, hi) then dotDevGo(dy, x, m),
// in one pass.
func dotDevMaskGo(dy, y, x []float32, m, lo, hi float32) (sdy, sdyx float32) {
	y, x = y[:len(dy)], x[:len(dy)]
	for i, v := range y {
		g := dy[i]
		if !(v > lo && v < hi) {
			g = 0
		}
		dy[i] = g
		sdy += g
		sdyx += g * (x[i] - m)
	}
	return sdy, sdyx
}

// affineGo sets y = min(max((x − m)·s + t, lo), hi) (NaN propagates):
// a bias add (m = 0, s = 1), BatchNorm's normalization, a clamp (ReLU:
// lo = 0, hi = +Inf; ReLU6: 0, 6) or all three in one pass.
func affineGo(y, x []float32, m, s, t, lo, hi float32) {
	x = x[:len(y)]
	for i, v := range x {
		z := (v-m)*s + t
		if z < lo {
			z = lo
		}
		if z > hi {
			z = hi
		}
		y[i] = z
	}
}

// axpbycGo sets dst = a·x + b·(y − m) + c.
func axpbycGo(dst, x, y []float32, a, b, m, c float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	for i := range dst {
		dst[i] = a*x[i] + b*(y[i]-m) + c
	}
}

// clampMaskGo sets dst = d where lo < y < hi, else 0: the derivative of
// a clamp applied to d, from the clamp's output y (dst may be d).
func clampMaskGo(dst, d, y []float32, lo, hi float32) {
	d, y = d[:len(dst)], y[:len(dst)]
	for i, v := range y {
		if v > lo && v < hi {
			dst[i] = d[i]
		} else {
			dst[i] = 0
		}
	}
}

// maxOff returns the largest of offs (0 if empty); taps checks src
// against it before running assembly.
func maxOff(offs []int32) int {
	m := int32(0)
	for _, o := range offs {
		if o < 0 {
			panic("train: taps: negative offset")
		}
		m = max(m, o)
	}
	return int(m)
}
