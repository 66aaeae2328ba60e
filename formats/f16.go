package formats

import (
	"math"
	"sync"
)

// IEEE 754 binary16 conversion. arrow/float16.New truncates the mantissa and
// flushes subnormals to zero, and its Float32 misreads subnormals, so the
// cache converts with these functions and stores the bits as float16.Num.

// f32ToF16 rounds f to the nearest binary16 (ties to even). Values beyond
// ±65504 (after rounding) become ±Inf; NaN stays NaN.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13)
		}
		return sign | 0x7c00
	case exp > 127+15: // overflow
		return sign | 0x7c00
	case exp >= 127-14: // normal range of binary16
		e := uint32(exp-127+15) << 10
		h := e | man>>13
		rest := man & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++ // may carry into the exponent, up to Inf: correct
		}
		return sign | uint16(h)
	case exp >= 127-25: // subnormal binary16
		man |= 0x800000
		shift := uint32(-exp + 127 - 14 + 13) // 14..24
		h := man >> shift
		rest := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	default:
		return sign
	}
}

// f16ToF32 converts exactly (every binary16 is a float32).
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	default: // subnormal: man * 2^-24
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
}

var (
	f16TableOnce sync.Once
	f16Table     []float32 // f16Table[h] = f16ToF32(h)
)

// f16Decode converts src into dst (len(dst) >= len(src)) through a 256 KiB
// lookup table.
func f16Decode(dst []float32, src []uint16) {
	f16TableOnce.Do(func() {
		f16Table = make([]float32, 1<<16)
		for i := range f16Table {
			f16Table[i] = f16ToF32(uint16(i))
		}
	})
	t := f16Table
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = t[h]
	}
}

// Float16Bits rounds f to the nearest IEEE 754 binary16 (ties to even,
// subnormals kept) and returns its bits. Values beyond ±65504 after
// rounding become ±Inf; NaN stays NaN. export uses it for float16 weights.
func Float16Bits(f float32) uint16 { return f32ToF16(f) }

// Float16Value converts binary16 bits to float32 exactly.
func Float16Value(h uint16) float32 { return f16ToF32(h) }
