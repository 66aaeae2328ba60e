//go:build !amd64 || purego

package train

func taps(dst, src []float32, offs []int32, w []float32, acc bool) {
	tapsGo(dst, src, offs, w, acc)
}
func dot(x, y []float32) float32                        { return dotGo(x, y) }
func sum(x []float32) float32                           { return sumGo(x) }
func sqDev(x []float32, m float32) float32              { return sqDevGo(x, m) }
func dotDev(dy, x []float32, m float32) (s, sx float32) { return dotDevGo(dy, x, m) }
func affine(y, x []float32, m, s, t, lo, hi float32)    { affineGo(y, x, m, s, t, lo, hi) }
func axpbyc(dst, x, y []float32, a, b, m, c float32)    { axpbycGo(dst, x, y, a, b, m, c) }
func clampMask(dst, d, y []float32, lo, hi float32)     { clampMaskGo(dst, d, y, lo, hi) }
func dotDevMask(dy, y, x []float32, m, lo, hi float32) (s, sx float32) {
	return dotDevMaskGo(dy, y, x, m, lo, hi)
}

func maxPool2Map(y []float32, idx []int32, x []float32, w, ho, wo, base int) {
	maxPool2MapGo(y, idx, x, w, ho, wo, base)
}

func dotTaps(out, dy, x []float32, offs []int32) { dotTapsGo(out, dy, x, offs) }
