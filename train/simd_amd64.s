//go:build amd64 && !purego

#include "textflag.h"

// Operand order is Go's: the destination last, e.g. VDIVPS Y4, Y1, Y5
// computes Y5 = Y1 / Y4, VFMADD231PS Y0, Y9, Y1 computes Y1 += Y9·Y0.

// func adamwAVX2(w, grad, m, v *float32, n int, k *adamConsts)
TEXT ·adamwAVX2(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), DX
	MOVQ v+24(FP), CX
	MOVQ n+32(FP), BX
	MOVQ k+40(FP), AX
	VBROADCASTSS 0(AX), Y8   // β₁
	VBROADCASTSS 4(AX), Y9   // 1−β₁
	VBROADCASTSS 8(AX), Y10  // β₂
	VBROADCASTSS 12(AX), Y11 // 1−β₂
	VBROADCASTSS 16(AX), Y12 // 1−lr·λ
	VBROADCASTSS 20(AX), Y13 // lr/(1−β₁ᵗ)
	VBROADCASTSS 24(AX), Y14 // 1/√(1−β₂ᵗ)
	VBROADCASTSS 28(AX), Y15 // ε
	SHLQ $2, BX
	XORQ R8, R8
adam_loop:
	CMPQ R8, BX
	JGE adam_done
	VMOVUPS (SI)(R8*1), Y0      // g
	VMULPS (DX)(R8*1), Y8, Y1   // β₁·m
	VFMADD231PS Y0, Y9, Y1      // m = β₁·m + (1−β₁)·g
	VMOVUPS Y1, (DX)(R8*1)
	VMULPS Y0, Y0, Y2           // g²
	VMULPS (CX)(R8*1), Y10, Y3  // β₂·v
	VFMADD231PS Y2, Y11, Y3     // v = β₂·v + (1−β₂)·g²
	VMOVUPS Y3, (CX)(R8*1)
	VSQRTPS Y3, Y4              // √v
	VFMADD213PS Y15, Y14, Y4    // √v·c₂ + ε
	VDIVPS Y4, Y1, Y5           // m / (√v·c₂ + ε)
	VMULPS (DI)(R8*1), Y12, Y6  // w·(1−lr·λ)
	VFNMADD231PS Y5, Y13, Y6    // − c₁·m/(…)
	VMOVUPS Y6, (DI)(R8*1)
	ADDQ $32, R8
	JMP adam_loop
adam_done:
	VZEROUPPER
	RET

// func biasReLUAVX2(y, b *float32, n int)
TEXT ·biasReLUAVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ n+16(FP), BX
	SHLQ $2, BX
	XORQ R8, R8
	VXORPS Y7, Y7, Y7
relu_loop:
	CMPQ R8, BX
	JGE relu_done
	VMOVUPS (DI)(R8*1), Y0
	VADDPS (SI)(R8*1), Y0, Y0
	VMAXPS Y0, Y7, Y0 // max(0, x): the second source (x) is returned if either is NaN
	VMOVUPS Y0, (DI)(R8*1)
	ADDQ $32, R8
	JMP relu_loop
relu_done:
	VZEROUPPER
	RET

// func biasAddAVX2(y, b *float32, n int)
TEXT ·biasAddAVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ n+16(FP), BX
	SHLQ $2, BX
	XORQ R8, R8
add_loop:
	CMPQ R8, BX
	JGE add_done
	VMOVUPS (DI)(R8*1), Y0
	VADDPS (SI)(R8*1), Y0, Y0
	VMOVUPS Y0, (DI)(R8*1)
	ADDQ $32, R8
	JMP add_loop
add_done:
	VZEROUPPER
	RET

// func reluBackSumAVX2(d, y, db *float32, n int)
TEXT ·reluBackSumAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ y+8(FP), SI
	MOVQ db+16(FP), DX
	MOVQ n+24(FP), BX
	SHLQ $2, BX
	XORQ R8, R8
	VXORPS Y7, Y7, Y7
back_loop:
	CMPQ R8, BX
	JGE back_done
	VMOVUPS (SI)(R8*1), Y1
	VCMPPS $0x0e, Y7, Y1, Y2    // y > 0 (GT_OS; false for NaN)
	VANDPS (DI)(R8*1), Y2, Y0   // d where y > 0, else 0
	VMOVUPS Y0, (DI)(R8*1)
	VADDPS (DX)(R8*1), Y0, Y0
	VMOVUPS Y0, (DX)(R8*1)
	ADDQ $32, R8
	JMP back_loop
back_done:
	VZEROUPPER
	RET

// func addToAVX2(db, d *float32, n int)
TEXT ·addToAVX2(SB), NOSPLIT, $0-24
	MOVQ db+0(FP), DI
	MOVQ d+8(FP), SI
	MOVQ n+16(FP), BX
	SHLQ $2, BX
	XORQ R8, R8
sum_loop:
	CMPQ R8, BX
	JGE sum_done
	VMOVUPS (DI)(R8*1), Y0
	VADDPS (SI)(R8*1), Y0, Y0
	VMOVUPS Y0, (DI)(R8*1)
	ADDQ $32, R8
	JMP sum_loop
sum_done:
	VZEROUPPER
	RET
