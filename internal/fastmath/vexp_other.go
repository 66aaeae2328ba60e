//go:build !amd64 || purego

package fastmath

func expSumVec(dst, src []float32, scale, bias float32) (int, float32) { return 0, 0 }
func maxVec(x []float32) (int, float32)                                { return 0, 0 }
func scaleVec(x []float32, a float32) int                              { return 0 }
func dotVec(x, y []float32) (int, float32)                             { return 0, 0 }
func mulSubVec(d, p []float32, s float32) int                          { return 0 }
