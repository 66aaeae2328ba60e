//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// hasTranspose reports whether transpose8, transpose4, copyRows and
// copyRows12 may be called.
var hasTranspose = cpu.X86.HasAVX

// transpose8 sets dst[q*ldd+i] = src[i*lds+q] for i < 8, q < n; n is a
// positive multiple of 8. In transpose_amd64.s.
//
//go:noescape
func transpose8(dst *float32, ldd int, src *float32, lds int, n int)

// transpose4 is transpose8 for 4 rows.
//
//go:noescape
func transpose4(dst *float32, ldd int, src *float32, lds int, n int)

// copyRows sets dst[r*8*w8+j] = src[r*lds+j] for r < rows, j < 8*w8; rows
// and w8 are positive. In transpose_amd64.s.
//
//go:noescape
func copyRows(dst *float32, src *float32, lds int, rows int, w8 int)

// copyRows12 sets dst[r*12+j] = src[r*lds+j] for r < rows, j < 12; rows is
// positive. In transpose_amd64.s.
//
//go:noescape
func copyRows12(dst *float32, src *float32, lds int, rows int)

// copyRowsHalf32 sets dst[r*32+j] = src[r*lds+j] for j < 16 and 0 for
// 16 ≤ j < 32, r < rows; rows is positive. In transpose_amd64.s.
//
//go:noescape
func copyRowsHalf32(dst *float32, src *float32, lds int, rows int)
