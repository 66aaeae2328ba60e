//go:build amd64 && !purego

#include "textflag.h"

// func transpose8(dst *float32, ldd int, src *float32, lds int, n int)
//
// dst[q*ldd + i] = src[i*lds + q] for i < 8 and q < n; n is a positive
// multiple of 8. Each 8×8 block is loaded as 8 ymm rows and transposed with
// the unpack/shuffle/permute sequence of Intel's optimization manual
// (ex. 11-19): unpcklps/unpckhps pair rows, shufps builds 4-float columns
// within 128-bit lanes, vperm2f128 joins the lanes. Needs AVX.
TEXT ·transpose8(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), DX
	SHLQ $2, DX
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), BX
	SHLQ $2, BX
	MOVQ n+32(FP), CX
	SHRQ $3, CX
	LEAQ (BX)(BX*2), R8 // 3*lds
	LEAQ (DX)(DX*2), R9 // 3*ldd

loop:
	MOVQ SI, R10
	VMOVUPS (R10), Y0
	VMOVUPS (R10)(BX*1), Y1
	VMOVUPS (R10)(BX*2), Y2
	VMOVUPS (R10)(R8*1), Y3
	LEAQ (R10)(BX*4), R10
	VMOVUPS (R10), Y4
	VMOVUPS (R10)(BX*1), Y5
	VMOVUPS (R10)(BX*2), Y6
	VMOVUPS (R10)(R8*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	MOVQ DI, R11
	VMOVUPS Y8, (R11)
	VMOVUPS Y9, (R11)(DX*1)
	VMOVUPS Y10, (R11)(DX*2)
	VMOVUPS Y11, (R11)(R9*1)
	LEAQ (R11)(DX*4), R11
	VMOVUPS Y12, (R11)
	VMOVUPS Y13, (R11)(DX*1)
	VMOVUPS Y14, (R11)(DX*2)
	VMOVUPS Y15, (R11)(R9*1)

	ADDQ $32, SI
	LEAQ (R11)(DX*4), DI
	DECQ CX
	JNZ loop
	VZEROUPPER
	RET

// func transpose4(dst *float32, ldd int, src *float32, lds int, n int)
//
// dst[q*ldd + i] = src[i*lds + q] for i < 4 and q < n; n is a positive
// multiple of 8. The 4×8 block transposes into column q in the low lane and
// column q+4 in the high lane of each result. Needs AVX.
TEXT ·transpose4(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), DX
	SHLQ $2, DX
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), BX
	SHLQ $2, BX
	MOVQ n+32(FP), CX
	SHRQ $3, CX
	LEAQ (BX)(BX*2), R8 // 3*lds
	LEAQ (DX)(DX*2), R9 // 3*ldd

loop4:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(BX*1), Y1
	VMOVUPS (SI)(BX*2), Y2
	VMOVUPS (SI)(R8*1), Y3

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VSHUFPS $0x44, Y10, Y8, Y0 // columns 0 | 4
	VSHUFPS $0xEE, Y10, Y8, Y1 // columns 1 | 5
	VSHUFPS $0x44, Y11, Y9, Y2 // columns 2 | 6
	VSHUFPS $0xEE, Y11, Y9, Y3 // columns 3 | 7

	MOVQ DI, R11
	VMOVUPS X0, (R11)
	VMOVUPS X1, (R11)(DX*1)
	VMOVUPS X2, (R11)(DX*2)
	VMOVUPS X3, (R11)(R9*1)
	LEAQ (R11)(DX*4), R11
	VEXTRACTF128 $1, Y0, (R11)
	VEXTRACTF128 $1, Y1, (R11)(DX*1)
	VEXTRACTF128 $1, Y2, (R11)(DX*2)
	VEXTRACTF128 $1, Y3, (R11)(R9*1)

	ADDQ $32, SI
	LEAQ (R11)(DX*4), DI
	DECQ CX
	JNZ loop4
	VZEROUPPER
	RET

// func copyRows(dst *float32, src *float32, lds int, rows int, w8 int)
//
// dst[r*8*w8 + j] = src[r*lds + j] for r < rows and j < 8*w8: rows of
// w8 ymm vectors gathered from stride lds into a dense panel; rows and w8
// are positive. Needs AVX.
TEXT ·copyRows(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), BX
	SHLQ $2, BX
	MOVQ rows+24(FP), CX
	MOVQ w8+32(FP), DX

row:
	XORQ AX, AX
	MOVQ DX, R8

chunk:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ $32, AX
	DECQ R8
	JNZ chunk
	ADDQ AX, DI
	ADDQ BX, SI
	DECQ CX
	JNZ row
	VZEROUPPER
	RET

// func copyRows12(dst *float32, src *float32, lds int, rows int)
//
// dst[r*12 + j] = src[r*lds + j] for r < rows and j < 12: the rows of a
// transposed A slice into an AVX-512 micro-panel (mr = 12); rows is
// positive. Needs AVX.
TEXT ·copyRows12(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), BX
	SHLQ $2, BX
	MOVQ rows+24(FP), CX

row12:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), X1
	VMOVUPS Y0, (DI)
	VMOVUPS X1, 32(DI)
	ADDQ $48, DI
	ADDQ BX, SI
	DECQ CX
	JNZ row12
	VZEROUPPER
	RET

// func copyRowsHalf32(dst *float32, src *float32, lds int, rows int)
//
// dst[r*32 + j] = src[r*lds + j] for j < 16 and 0 for 16 ≤ j < 32, r <
// rows: 16 columns of B into a 32-wide micro-panel, zero-padded; rows is
// positive. Needs AVX.
TEXT ·copyRowsHalf32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), BX
	SHLQ $2, BX
	MOVQ rows+24(FP), CX
	VXORPS Y2, Y2, Y2

rowh:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y2, 96(DI)
	ADDQ $128, DI
	ADDQ BX, SI
	DECQ CX
	JNZ rowh
	VZEROUPPER
	RET
