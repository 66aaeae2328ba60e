//go:build amd64 && !purego

package train

// Kernels in convkern_amd64.s; n is a multiple of 8.

//go:noescape
func tapsAVX2(dst, src *float32, offs *int32, w *float32, ntaps, n, acc int)

//go:noescape
func dotAVX2(x, y *float32, n int) float32

//go:noescape
func sumAVX2(x *float32, n int) float32

//go:noescape
func sqDevAVX2(x *float32, n int, m float32) float32

//go:noescape
func dotDevAVX2(dy, x *float32, n int, m float32, out *[2]float32)

//go:noescape
func dotDevMaskAVX2(dy, y, x *float32, n int, k *[4]float32, out *[2]float32)

//go:noescape
func affineAVX2(y, x *float32, n int, k *[8]float32)

//go:noescape
func axpbycAVX2(dst, x, y *float32, n int, k *[4]float32)

//go:noescape
func clampMaskAVX2(dst, d, y *float32, n int, k *[2]float32)

func taps(dst, src []float32, offs []int32, w []float32, acc bool) {
	n := len(dst) &^ 7
	if useAVX2 && n > 0 && len(offs) > 0 {
		_, _ = src[maxOff(offs)+n-1], w[len(offs)-1]
		a := 0
		if acc {
			a = 1
		}
		tapsAVX2(&dst[0], &src[0], &offs[0], &w[0], len(offs), n, a)
	} else {
		n = 0
	}
	tapsGo(dst[n:], src[n:], offs, w, acc)
}

func dot(x, y []float32) float32 {
	n := len(x) &^ 7
	var s float32
	if useAVX2 && n > 0 {
		_ = y[n-1]
		s = dotAVX2(&x[0], &y[0], n)
	} else {
		n = 0
	}
	return s + dotGo(x[n:], y[n:])
}

func sum(x []float32) float32 {
	n := len(x) &^ 7
	var s float32
	if useAVX2 && n > 0 {
		s = sumAVX2(&x[0], n)
	} else {
		n = 0
	}
	return s + sumGo(x[n:])
}

func sqDev(x []float32, m float32) float32 {
	n := len(x) &^ 7
	var s float32
	if useAVX2 && n > 0 {
		s = sqDevAVX2(&x[0], n, m)
	} else {
		n = 0
	}
	return s + sqDevGo(x[n:], m)
}

func dotDev(dy, x []float32, m float32) (sdy, sdyx float32) {
	n := len(dy) &^ 7
	var out [2]float32
	if useAVX2 && n > 0 {
		_ = x[n-1]
		dotDevAVX2(&dy[0], &x[0], n, m, &out)
	} else {
		n = 0
	}
	a, b := dotDevGo(dy[n:], x[n:], m)
	return out[0] + a, out[1] + b
}

func affine(y, x []float32, m, s, t, lo, hi float32) {
	n := len(y) &^ 7
	if useAVX2 && n > 0 {
		_ = x[n-1]
		k := [8]float32{m, s, t, lo, hi}
		affineAVX2(&y[0], &x[0], n, &k)
	} else {
		n = 0
	}
	affineGo(y[n:], x[n:], m, s, t, lo, hi)
}

func axpbyc(dst, x, y []float32, a, b, m, c float32) {
	n := len(dst) &^ 7
	if useAVX2 && n > 0 {
		_, _ = x[n-1], y[n-1]
		k := [4]float32{a, b, m, c}
		axpbycAVX2(&dst[0], &x[0], &y[0], n, &k)
	} else {
		n = 0
	}
	axpbycGo(dst[n:], x[n:], y[n:], a, b, m, c)
}

func clampMask(dst, d, y []float32, lo, hi float32) {
	n := len(dst) &^ 7
	if useAVX2 && n > 0 {
		_, _ = d[n-1], y[n-1]
		k := [2]float32{lo, hi}
		clampMaskAVX2(&dst[0], &d[0], &y[0], n, &k)
	} else {
		n = 0
	}
	clampMaskGo(dst[n:], d[n:], y[n:], lo, hi)
}

func dotDevMask(dy, y, x []float32, m, lo, hi float32) (sdy, sdyx float32) {
	n := len(dy) &^ 7
	var out [2]float32
	if useAVX2 && n > 0 {
		_, _ = y[n-1], x[n-1]
		k := [4]float32{m, lo, hi}
		dotDevMaskAVX2(&dy[0], &y[0], &x[0], n, &k, &out)
	} else {
		n = 0
	}
	a, b := dotDevMaskGo(dy[n:], y[n:], x[n:], m, lo, hi)
	return out[0] + a, out[1] + b
}

//go:noescape
func maxPool2AVX2(y *float32, idx *int32, x *float32, w, ho, wo, base int)

// maxPool2Map is 2×2 max pooling with stride 2 of one channel map x
// [h, w] into y [ho, wo] (ho = ⌊h/2⌋, wo = ⌊w/2⌋), idx[i·wo + j] the index
// in x of each maximum plus base, as maxPool2MapGo.
func maxPool2Map(y []float32, idx []int32, x []float32, w, ho, wo, base int) {
	if !useAVX2 || ho == 0 || wo == 0 {
		maxPool2MapGo(y, idx, x, w, ho, wo, base)
		return
	}
	_, _, _ = y[ho*wo-1], idx[ho*wo-1], x[(2*ho-1)*w+2*wo-1]
	maxPool2AVX2(&y[0], &idx[0], &x[0], w, ho, wo, base)
}

//go:noescape
func dot4AVX2(out *[4]float32, dy, x *float32, offs *[4]int, n int)

func dotTaps(out, dy, x []float32, offs []int32) {
	n := len(dy) &^ 7
	t := 0
	if useAVX2 && n > 0 {
		_ = x[maxOff(offs)+n-1]
		for ; t+4 <= len(offs); t += 4 {
			o := [4]int{int(offs[t]), int(offs[t+1]), int(offs[t+2]), int(offs[t+3])}
			acc := (*[4]float32)(out[t : t+4])
			dot4AVX2(acc, &dy[0], &x[0], &o, n)
		}
	} else {
		n = 0
	}
	for k := t; k < len(offs); k++ { // the last taps, and everything without AVX2
		out[k] += dot(dy[:n], x[offs[k]:])
	}
	if n < len(dy) {
		dotTapsGo(out, dy[n:], x[n:], offs)
	}
}
