package train

import (
	"fmt"
	"math/rand/v2"
)

// Dropout zeroes each value with probability P while training and scales
// the others by 1/(1−P) (inverted dropout, torch.nn.Dropout); outside
// training it is the identity:
//
//	y = x·m,  m_i = 0 with probability P, else 1/(1−P)
//	dx = dy·m
//
// The mask is drawn from the rng given to SetTraining, one 32-bit draw per
// value in row-major order, so it depends only on that stream.
type Dropout struct {
	Size     int
	P        float64
	training bool
	rng      *rand.Rand
	mask     []float32
	rows     int
}

// NewDropout returns a Dropout over size values per sample. It panics
// unless 0 <= p < 1.
func NewDropout(size int, p float64) *Dropout {
	if !(p >= 0 && p < 1) {
		panic(fmt.Sprintf("train: dropout probability %v not in [0, 1)", p))
	}
	return &Dropout{Size: size, P: p}
}

func (l *Dropout) InSize() int      { return l.Size }
func (l *Dropout) OutSize() int     { return l.Size }
func (l *Dropout) Params() []*Param { return nil }

// SetTraining switches between training (random masks from rng) and
// evaluation (identity).
func (l *Dropout) SetTraining(training bool, rng *rand.Rand) {
	l.training, l.rng = training, rng
}

// Active reports whether Forward changes its input (training with P > 0).
func (l *Dropout) Active() bool { return l.training && l.P > 0 }

// Forward writes dst = x·m (training) or dst = x; dst may be x.
func (l *Dropout) Forward(dst, x Mat) {
	checkShapes("Dropout", dst, x, l.Size, l.Size)
	n := x.Rows * l.Size
	l.rows = x.Rows
	if !l.Active() {
		copy(dst.Data[:n], x.Data[:n])
		return
	}
	l.mask = grow(l.mask, n)
	scale := float32(1 / (1 - l.P))
	thresh := uint32(l.P * (1 << 32)) // keep iff draw >= P·2³²
	for i := 0; i < n; i += 2 {
		u := l.rng.Uint64()
		for k := 0; k < 2 && i+k < n; k++ {
			m := float32(0)
			if uint32(u>>(32*k)) >= thresh {
				m = scale
			}
			l.mask[i+k] = m
			dst.Data[i+k] = x.Data[i+k] * m
		}
	}
}

// Backward writes dx = dy·m; dx may be dy.
func (l *Dropout) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	n := l.rows * l.Size
	if !l.Active() {
		copy(dx.Data[:n], dy.Data[:n])
		return
	}
	for i, m := range l.mask[:n] {
		dx.Data[i] = dy.Data[i] * m
	}
}
