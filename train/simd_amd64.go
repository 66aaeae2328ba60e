//go:build amd64 && !purego

package train

import "golang.org/x/sys/cpu"

// Kernels in simd_amd64.s; n is a multiple of 8.

//go:noescape
func adamwAVX2(w, grad, m, v *float32, n int, k *adamConsts)

//go:noescape
func biasReLUAVX2(y, b *float32, n int)

//go:noescape
func biasAddAVX2(y, b *float32, n int)

//go:noescape
func reluBackSumAVX2(d, y, db *float32, n int)

//go:noescape
func addToAVX2(db, d *float32, n int)

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func adamw(w, g, m, v []float32, k *adamConsts) {
	n := len(w) &^ 7
	if useAVX2 && n > 0 {
		_, _, _ = g[n-1], m[n-1], v[n-1]
		adamwAVX2(&w[0], &g[0], &m[0], &v[0], n, k)
	} else {
		n = 0
	}
	adamwGo(w[n:], g[n:], m[n:], v[n:], k)
}

func biasReLU(y, b []float32) {
	n := len(y) &^ 7
	if useAVX2 && n > 0 {
		_ = b[n-1]
		biasReLUAVX2(&y[0], &b[0], n)
	} else {
		n = 0
	}
	biasReLUGo(y[n:], b[n:])
}

func biasAdd(y, b []float32) {
	n := len(y) &^ 7
	if useAVX2 && n > 0 {
		_ = b[n-1]
		biasAddAVX2(&y[0], &b[0], n)
	} else {
		n = 0
	}
	biasAddGo(y[n:], b[n:])
}

func reluBackSum(d, y, db []float32) {
	n := len(d) &^ 7
	if useAVX2 && n > 0 {
		_, _ = y[n-1], db[n-1]
		reluBackSumAVX2(&d[0], &y[0], &db[0], n)
	} else {
		n = 0
	}
	reluBackSumGo(d[n:], y[n:], db[n:])
}

func addTo(db, d []float32) {
	n := len(db) &^ 7
	if useAVX2 && n > 0 {
		_ = d[n-1]
		addToAVX2(&db[0], &d[0], n)
	} else {
		n = 0
	}
	addToGo(db[n:], d[n:])
}
