//go:build amd64 && !purego

#include "textflag.h"

// Kernels of convkern.go; see there for what each computes. Operand order
// is Go's, the destination last: VFMADD231PS (AX), Y4, Y0 computes
// Y0 += Y4·mem, VSUBPS Y8, Y4, Y5 computes Y5 = Y4 − Y8. n is a multiple
// of 8 and at least 8.

// func tapsAVX2(dst, src *float32, offs *int32, w *float32, ntaps, n, acc int)
//
// Blocks of 32 outputs in four accumulators (so four FMA chains hide the
// FMA latency), then blocks of 8; per block the taps run in order.
TEXT ·tapsAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), R9
	MOVQ w+24(FP), R10
	MOVQ ntaps+32(FP), R11
	MOVQ n+40(FP), BX
	MOVQ acc+48(FP), R12
	XORQ R8, R8 // q

taps32:
	LEAQ 32(R8), AX
	CMPQ AX, BX
	JGT  taps8
	TESTQ R12, R12
	JZ   taps32zero
	VMOVUPS (DI)(R8*4), Y0
	VMOVUPS 32(DI)(R8*4), Y1
	VMOVUPS 64(DI)(R8*4), Y2
	VMOVUPS 96(DI)(R8*4), Y3
	JMP  taps32start

taps32zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

taps32start:
	LEAQ (SI)(R8*4), DX // src + q
	XORQ CX, CX         // t

taps32loop:
	CMPQ CX, R11
	JGE  taps32store
	MOVLQSX (R9)(CX*4), AX
	LEAQ (DX)(AX*4), AX
	VBROADCASTSS (R10)(CX*4), Y4
	VFMADD231PS (AX), Y4, Y0
	VFMADD231PS 32(AX), Y4, Y1
	VFMADD231PS 64(AX), Y4, Y2
	VFMADD231PS 96(AX), Y4, Y3
	INCQ CX
	JMP  taps32loop

taps32store:
	VMOVUPS Y0, (DI)(R8*4)
	VMOVUPS Y1, 32(DI)(R8*4)
	VMOVUPS Y2, 64(DI)(R8*4)
	VMOVUPS Y3, 96(DI)(R8*4)
	ADDQ $32, R8
	JMP  taps32

taps8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  tapsdone
	TESTQ R12, R12
	JZ   taps8zero
	VMOVUPS (DI)(R8*4), Y0
	JMP  taps8start

taps8zero:
	VXORPS Y0, Y0, Y0

taps8start:
	LEAQ (SI)(R8*4), DX
	XORQ CX, CX

taps8loop:
	CMPQ CX, R11
	JGE  taps8store
	MOVLQSX (R9)(CX*4), AX
	VBROADCASTSS (R10)(CX*4), Y4
	VFMADD231PS (DX)(AX*4), Y4, Y0
	INCQ CX
	JMP  taps8loop

taps8store:
	VMOVUPS Y0, (DI)(R8*4)
	ADDQ $8, R8
	JMP  taps8

tapsdone:
	VZEROUPPER
	RET

// HSUM sets X0 to the sum of the 8 lanes of Y0 (clobbers X1), always in
// the same tree order.
#define HSUM \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0x4e, X0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0xb1, X0, X1; \
	VADDPS X1, X0, X0

// func dotAVX2(x, y *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ R8, R8

dot32:
	LEAQ 32(R8), AX
	CMPQ AX, BX
	JGT  dot8
	VMOVUPS (SI)(R8*4), Y4
	VMOVUPS 32(SI)(R8*4), Y5
	VMOVUPS 64(SI)(R8*4), Y6
	VMOVUPS 96(SI)(R8*4), Y7
	VFMADD231PS (DI)(R8*4), Y4, Y0
	VFMADD231PS 32(DI)(R8*4), Y5, Y1
	VFMADD231PS 64(DI)(R8*4), Y6, Y2
	VFMADD231PS 96(DI)(R8*4), Y7, Y3
	ADDQ $32, R8
	JMP  dot32

dot8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  dotsum
	VMOVUPS (SI)(R8*4), Y4
	VFMADD231PS (DI)(R8*4), Y4, Y0
	ADDQ $8, R8
	JMP  dot8

dotsum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func sumAVX2(x *float32, n int) float32
TEXT ·sumAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ R8, R8

sum32:
	LEAQ 32(R8), AX
	CMPQ AX, BX
	JGT  sum8
	VADDPS (SI)(R8*4), Y0, Y0
	VADDPS 32(SI)(R8*4), Y1, Y1
	VADDPS 64(SI)(R8*4), Y2, Y2
	VADDPS 96(SI)(R8*4), Y3, Y3
	ADDQ $32, R8
	JMP  sum32

sum8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  sumsum
	VADDPS (SI)(R8*4), Y0, Y0
	ADDQ $8, R8
	JMP  sum8

sumsum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func sqDevAVX2(x *float32, n int, m float32) float32
TEXT ·sqDevAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), BX
	VBROADCASTSS m+16(FP), Y8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ R8, R8

sq32:
	LEAQ 32(R8), AX
	CMPQ AX, BX
	JGT  sq8
	VMOVUPS (SI)(R8*4), Y4
	VMOVUPS 32(SI)(R8*4), Y5
	VMOVUPS 64(SI)(R8*4), Y6
	VMOVUPS 96(SI)(R8*4), Y7
	VSUBPS Y8, Y4, Y4
	VSUBPS Y8, Y5, Y5
	VSUBPS Y8, Y6, Y6
	VSUBPS Y8, Y7, Y7
	VFMADD231PS Y4, Y4, Y0
	VFMADD231PS Y5, Y5, Y1
	VFMADD231PS Y6, Y6, Y2
	VFMADD231PS Y7, Y7, Y3
	ADDQ $32, R8
	JMP  sq32

sq8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  sqsum
	VMOVUPS (SI)(R8*4), Y4
	VSUBPS Y8, Y4, Y4
	VFMADD231PS Y4, Y4, Y0
	ADDQ $8, R8
	JMP  sq8

sqsum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func dotDevAVX2(dy, x *float32, n int, m float32, out *[2]float32)
//
// out[0] = Σ dy, out[1] = Σ dy·(x − m), each in two accumulators.
TEXT ·dotDevAVX2(SB), NOSPLIT, $0-40
	MOVQ dy+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), BX
	VBROADCASTSS m+24(FP), Y8
	MOVQ out+32(FP), DX
	VXORPS Y0, Y0, Y0 // Σ dy
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2 // Σ dy·(x − m)
	VXORPS Y3, Y3, Y3
	XORQ R8, R8

dd16:
	LEAQ 16(R8), AX
	CMPQ AX, BX
	JGT  dd8
	VMOVUPS (SI)(R8*4), Y4
	VMOVUPS 32(SI)(R8*4), Y5
	VMOVUPS (DI)(R8*4), Y6
	VMOVUPS 32(DI)(R8*4), Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VSUBPS Y8, Y6, Y6
	VSUBPS Y8, Y7, Y7
	VFMADD231PS Y4, Y6, Y2
	VFMADD231PS Y5, Y7, Y3
	ADDQ $16, R8
	JMP  dd16

dd8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  ddsum
	VMOVUPS (SI)(R8*4), Y4
	VMOVUPS (DI)(R8*4), Y6
	VADDPS Y4, Y0, Y0
	VSUBPS Y8, Y6, Y6
	VFMADD231PS Y4, Y6, Y2
	ADDQ $8, R8
	JMP  dd8

ddsum:
	VADDPS Y1, Y0, Y0
	HSUM
	VMOVSS X0, 0(DX)
	VADDPS Y3, Y2, Y0
	HSUM
	VMOVSS X0, 4(DX)
	VZEROUPPER
	RET

// func affineAVX2(y, x *float32, n int, k *[8]float32)
//
// y = min(max((x − k[0])·k[1] + k[2], k[3]), k[4]); VMAXPS/VMINPS return
// their second source (the value) when either is NaN, so NaN propagates.
TEXT ·affineAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), BX
	MOVQ k+24(FP), AX
	VBROADCASTSS 0(AX), Y7
	VBROADCASTSS 4(AX), Y8
	VBROADCASTSS 8(AX), Y9
	VBROADCASTSS 12(AX), Y10
	VBROADCASTSS 16(AX), Y11
	XORQ R8, R8

aff16:
	LEAQ 16(R8), AX
	CMPQ AX, BX
	JGT  aff8
	VMOVUPS (SI)(R8*4), Y0
	VMOVUPS 32(SI)(R8*4), Y1
	VSUBPS Y7, Y0, Y0
	VSUBPS Y7, Y1, Y1
	VFMADD213PS Y9, Y8, Y0 // Y0 = Y8·Y0 + Y9
	VFMADD213PS Y9, Y8, Y1
	VMAXPS Y0, Y10, Y0
	VMAXPS Y1, Y10, Y1
	VMINPS Y0, Y11, Y0
	VMINPS Y1, Y11, Y1
	VMOVUPS Y0, (DI)(R8*4)
	VMOVUPS Y1, 32(DI)(R8*4)
	ADDQ $16, R8
	JMP  aff16

aff8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  affdone
	VMOVUPS (SI)(R8*4), Y0
	VSUBPS Y7, Y0, Y0
	VFMADD213PS Y9, Y8, Y0
	VMAXPS Y0, Y10, Y0
	VMINPS Y0, Y11, Y0
	VMOVUPS Y0, (DI)(R8*4)
	ADDQ $8, R8
	JMP  aff8

affdone:
	VZEROUPPER
	RET

// func axpbycAVX2(dst, x, y *float32, n int, k *[4]float32)
//
// dst = k[0]·x + k[1]·(y − k[2]) + k[3].
TEXT ·axpbycAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), BX
	MOVQ k+32(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	XORQ R8, R8

ax8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  axdone
	VMOVUPS (DX)(R8*4), Y1
	VSUBPS Y10, Y1, Y1       // y − m
	VFMADD213PS Y11, Y9, Y1  // b·(y − m) + c
	VFMADD231PS (SI)(R8*4), Y8, Y1 // + a·x
	VMOVUPS Y1, (DI)(R8*4)
	ADDQ $8, R8
	JMP  ax8

axdone:
	VZEROUPPER
	RET

// func clampMaskAVX2(dst, d, y *float32, n int, k *[2]float32)
//
// dst = d where k[0] < y < k[1], else 0 (also for NaN y).
TEXT ·clampMaskAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ d+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), BX
	MOVQ k+32(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	XORQ R8, R8

cm8:
	LEAQ 8(R8), AX
	CMPQ AX, BX
	JGT  cmdone
	VMOVUPS (DX)(R8*4), Y1
	VCMPPS $0x0e, Y8, Y1, Y2 // y > lo (GT_OS; false for NaN)
	VCMPPS $0x01, Y9, Y1, Y3 // y < hi (LT_OS)
	VANDPS Y3, Y2, Y2
	VANDPS (SI)(R8*4), Y2, Y0
	VMOVUPS Y0, (DI)(R8*4)
	ADDQ $8, R8
	JMP  cm8

cmdone:
	VZEROUPPER
	RET

// func dotDevMaskAVX2(dy, y, x *float32, n int, k *[4]float32, out *[2]float32)
//
// dy = dy where k[1] < y < k[2], else 0 (written back); out[0] = Σ dy,
// out[1] = Σ dy·(x − k[0]) of the masked dy.
TEXT ·dotDevMaskAVX2(SB), NOSPLIT, $0-48
	MOVQ dy+0(FP), SI
	MOVQ y+8(FP), DX
	MOVQ x+16(FP), DI
	MOVQ n+24(FP), BX
	MOVQ k+32(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	MOVQ out+40(FP), AX
	VXORPS Y0, Y0, Y0 // Σ dy
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2 // Σ dy·(x − m)
	VXORPS Y3, Y3, Y3
	XORQ R8, R8

dm16:
	LEAQ 16(R8), CX
	CMPQ CX, BX
	JGT  dm8
	VMOVUPS (DX)(R8*4), Y4
	VMOVUPS 32(DX)(R8*4), Y5
	VCMPPS $0x0e, Y9, Y4, Y6  // y > lo
	VCMPPS $0x01, Y10, Y4, Y4 // y < hi
	VANDPS Y6, Y4, Y4
	VCMPPS $0x0e, Y9, Y5, Y7
	VCMPPS $0x01, Y10, Y5, Y5
	VANDPS Y7, Y5, Y5
	VANDPS (SI)(R8*4), Y4, Y4 // masked dy
	VANDPS 32(SI)(R8*4), Y5, Y5
	VMOVUPS Y4, (SI)(R8*4)
	VMOVUPS Y5, 32(SI)(R8*4)
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VMOVUPS (DI)(R8*4), Y6
	VMOVUPS 32(DI)(R8*4), Y7
	VSUBPS Y8, Y6, Y6
	VSUBPS Y8, Y7, Y7
	VFMADD231PS Y4, Y6, Y2
	VFMADD231PS Y5, Y7, Y3
	ADDQ $16, R8
	JMP  dm16

dm8:
	LEAQ 8(R8), CX
	CMPQ CX, BX
	JGT  dmsum
	VMOVUPS (DX)(R8*4), Y4
	VCMPPS $0x0e, Y9, Y4, Y6
	VCMPPS $0x01, Y10, Y4, Y4
	VANDPS Y6, Y4, Y4
	VANDPS (SI)(R8*4), Y4, Y4
	VMOVUPS Y4, (SI)(R8*4)
	VADDPS Y4, Y0, Y0
	VMOVUPS (DI)(R8*4), Y6
	VSUBPS Y8, Y6, Y6
	VFMADD231PS Y4, Y6, Y2
	ADDQ $8, R8
	JMP  dm8

dmsum:
	VADDPS Y1, Y0, Y0
	HSUM
	VMOVSS X0, 0(AX)
	VADDPS Y3, Y2, Y0
	HSUM
	VMOVSS X0, 4(AX)
	VZEROUPPER
	RET

// Constants of maxPool2AVX2.
DATA poolMask<>+0(SB)/4, $0xffffffff
DATA poolMask<>+4(SB)/4, $0xffffffff
DATA poolMask<>+8(SB)/4, $0xffffffff
DATA poolMask<>+12(SB)/4, $0xffffffff
DATA poolMask<>+16(SB)/4, $0xffffffff
DATA poolMask<>+20(SB)/4, $0xffffffff
DATA poolMask<>+24(SB)/4, $0xffffffff
DATA poolMask<>+28(SB)/4, $0xffffffff
DATA poolMask<>+32(SB)/4, $0
DATA poolMask<>+36(SB)/4, $0
DATA poolMask<>+40(SB)/4, $0
DATA poolMask<>+44(SB)/4, $0
DATA poolMask<>+48(SB)/4, $0
DATA poolMask<>+52(SB)/4, $0
DATA poolMask<>+56(SB)/4, $0
DATA poolMask<>+60(SB)/4, $0
GLOBL poolMask<>(SB), RODATA|NOPTR, $64

// 2j of each lane before the final VPERMPD (lanes hold outputs 0, 1, 4,
// 5, 2, 3, 6, 7 after the even/odd VSHUFPS).
DATA poolJ<>+0(SB)/4, $0
DATA poolJ<>+4(SB)/4, $2
DATA poolJ<>+8(SB)/4, $8
DATA poolJ<>+12(SB)/4, $10
DATA poolJ<>+16(SB)/4, $4
DATA poolJ<>+20(SB)/4, $6
DATA poolJ<>+24(SB)/4, $12
DATA poolJ<>+28(SB)/4, $14
GLOBL poolJ<>(SB), RODATA|NOPTR, $32

DATA poolConst<>+0(SB)/4, $0x7fffffff
DATA poolConst<>+4(SB)/4, $1
GLOBL poolConst<>(SB), RODATA|NOPTR, $8

// POOLBODY: from Y0, Y1 (16 values of input row 2i) and Y2, Y3 (row
// 2i+1), 8 outputs of 2×2 max pooling: Y0 the maxima, Y1 their input
// indices (Y10 + the window position 0, 1, w or w+1). Values are compared
// by their orderKey (bits ^ (bits>>31 & 0x7fffffff), signed): the first
// maximum of the window in row-major order, as max2 in pool.go.
#define POOLBODY \
	VSHUFPS $0x88, Y1, Y0, Y4; \
	VSHUFPS $0xDD, Y1, Y0, Y5; \
	VSHUFPS $0x88, Y3, Y2, Y6; \
	VSHUFPS $0xDD, Y3, Y2, Y7; \
	VPSRAD $31, Y4, Y0; \
	VPAND Y15, Y0, Y0; \
	VPXOR Y4, Y0, Y0; \
	VPSRAD $31, Y5, Y1; \
	VPAND Y15, Y1, Y1; \
	VPXOR Y5, Y1, Y1; \
	VPSRAD $31, Y6, Y2; \
	VPAND Y15, Y2, Y2; \
	VPXOR Y6, Y2, Y2; \
	VPSRAD $31, Y7, Y3; \
	VPAND Y15, Y3, Y3; \
	VPXOR Y7, Y3, Y3; \
	VPCMPGTD Y0, Y1, Y8; \
	VPCMPGTD Y2, Y3, Y9; \
	VPMAXSD Y0, Y1, Y0; \
	VPMAXSD Y2, Y3, Y2; \
	VBLENDVPS Y8, Y5, Y4, Y4; \
	VBLENDVPS Y9, Y7, Y6, Y6; \
	VPAND Y13, Y8, Y8; \
	VPAND Y13, Y9, Y9; \
	VPADDD Y12, Y9, Y9; \
	VPCMPGTD Y0, Y2, Y3; \
	VBLENDVPS Y3, Y6, Y4, Y0; \
	VBLENDVPS Y3, Y9, Y8, Y1; \
	VPADDD Y10, Y1, Y1; \
	VPERMPD $0xD8, Y0, Y0; \
	VPERMQ $0xD8, Y1, Y1

// func maxPool2AVX2(y *float32, idx *int32, x *float32, w, ho, wo, base int)
//
// 2×2 max pooling with stride 2 of one channel map x (rows of w values):
// for i < ho, j < wo, y[i·wo+j] is the maximum of x[2i, 2j..2j+1] and
// x[2i+1, 2j..2j+1], idx[i·wo+j] its index in x plus base. A row's last
// block of fewer than 8 outputs is loaded and stored with masks.
TEXT ·maxPool2AVX2(SB), NOSPLIT, $0-56
	MOVQ y+0(FP), R8       // output row
	MOVQ idx+8(FP), R15    // index row
	MOVQ x+16(FP), AX      // input row 2i
	MOVQ w+24(FP), R9
	MOVQ ho+32(FP), R10
	MOVQ wo+40(FP), R11
	MOVQ base+48(FP), R14  // base + 2i·w
	LEAQ poolMask<>(SB), SI
	VPBROADCASTD poolConst<>+0(SB), Y15
	VPBROADCASTD poolConst<>+4(SB), Y13
	VMOVDQU poolJ<>(SB), Y14
	MOVQ R9, X12
	VPBROADCASTD X12, Y12
	XORQ R13, R13 // i

prow:
	CMPQ R13, R10
	JGE  pdone
	LEAQ (AX)(R9*4), BX    // input row 2i+1
	XORQ CX, CX            // j

pblk:
	MOVQ R11, DI
	SUBQ CX, DI            // r: outputs left in the row
	JLE  pnext
	LEAQ (R14)(CX*2), DX   // Y10 = base + 2i·w + 2j + each lane's 2j
	MOVQ DX, X10
	VPBROADCASTD X10, Y10
	VPADDD Y14, Y10, Y10
	CMPQ DI, $8
	JL   ptail
	VMOVUPS (AX)(CX*8), Y0
	VMOVUPS 32(AX)(CX*8), Y1
	VMOVUPS (BX)(CX*8), Y2
	VMOVUPS 32(BX)(CX*8), Y3
	POOLBODY
	VMOVUPS Y0, (R8)(CX*4)
	VMOVDQU Y1, (R15)(CX*4)
	ADDQ $8, CX
	JMP  pblk

ptail:
	// r < 8 outputs from 2r inputs of each row; the masks of the first k
	// lanes are 8 values of poolMask from (8 − k)·4.
	MOVQ DI, DX
	SHLQ $1, DX
	CMPQ DX, $8
	JLE  plo
	MOVQ $8, DX

plo:
	NEGQ DX
	VMOVDQU 32(SI)(DX*4), Y11 // the first min(2r, 8) lanes
	VMASKMOVPS (AX)(CX*8), Y11, Y0
	VMASKMOVPS (BX)(CX*8), Y11, Y2
	MOVQ DI, DX
	SHLQ $1, DX
	SUBQ $8, DX
	JGE  phi
	XORQ DX, DX

phi:
	NEGQ DX
	VMOVDQU 32(SI)(DX*4), Y11 // the first max(2r − 8, 0) lanes
	VMASKMOVPS 32(AX)(CX*8), Y11, Y1
	VMASKMOVPS 32(BX)(CX*8), Y11, Y3
	POOLBODY
	MOVQ DI, DX
	NEGQ DX
	VMOVDQU 32(SI)(DX*4), Y11 // the first r lanes
	VMASKMOVPS Y0, Y11, (R8)(CX*4)
	VPMASKMOVD Y1, Y11, (R15)(CX*4)

pnext:
	LEAQ (R8)(R11*4), R8
	LEAQ (R15)(R11*4), R15
	LEAQ (AX)(R9*8), AX    // two input rows on
	LEAQ (R14)(R9*2), R14
	INCQ R13
	JMP  prow

pdone:
	VZEROUPPER
	RET

// func dot4AVX2(out *[4]float32, dy, x *float32, offs *[4]int, n int)
//
// out[k] += Σ_{q<n} dy[q]·x[q + offs[k]] for k < 4: four dot products
// that share their dy loads, two blocks of 8 at a time (8 FMA chains).
TEXT ·dot4AVX2(SB), NOSPLIT, $0-40
	MOVQ dy+8(FP), SI
	MOVQ x+16(FP), DI
	MOVQ offs+24(FP), AX
	MOVQ n+32(FP), BX
	MOVQ 0(AX), R9
	MOVQ 8(AX), R10
	MOVQ 16(AX), R11
	MOVQ 24(AX), R12
	LEAQ (DI)(R9*4), R9    // x + offs[k]
	LEAQ (DI)(R10*4), R10
	LEAQ (DI)(R11*4), R11
	LEAQ (DI)(R12*4), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ R8, R8

d4x16:
	LEAQ 16(R8), CX
	CMPQ CX, BX
	JGT  d4x8
	VMOVUPS (SI)(R8*4), Y8
	VMOVUPS 32(SI)(R8*4), Y9
	VFMADD231PS (R9)(R8*4), Y8, Y0
	VFMADD231PS (R10)(R8*4), Y8, Y1
	VFMADD231PS (R11)(R8*4), Y8, Y2
	VFMADD231PS (R12)(R8*4), Y8, Y3
	VFMADD231PS 32(R9)(R8*4), Y9, Y4
	VFMADD231PS 32(R10)(R8*4), Y9, Y5
	VFMADD231PS 32(R11)(R8*4), Y9, Y6
	VFMADD231PS 32(R12)(R8*4), Y9, Y7
	ADDQ $16, R8
	JMP  d4x16

d4x8:
	LEAQ 8(R8), CX
	CMPQ CX, BX
	JGT  d4sum
	VMOVUPS (SI)(R8*4), Y8
	VFMADD231PS (R9)(R8*4), Y8, Y0
	VFMADD231PS (R10)(R8*4), Y8, Y1
	VFMADD231PS (R11)(R8*4), Y8, Y2
	VFMADD231PS (R12)(R8*4), Y8, Y3
	ADDQ $8, R8
	JMP  d4x8

d4sum:
	MOVQ out+0(FP), DX
	VADDPS Y4, Y0, Y4 // HSUM clobbers X0 and X1: the sums go to Y4..Y7 first
	VADDPS Y5, Y1, Y5
	VADDPS Y6, Y2, Y6
	VADDPS Y7, Y3, Y7
	VMOVAPS Y4, Y0
	HSUM
	VADDSS 0(DX), X0, X0
	VMOVSS X0, 0(DX)
	VMOVAPS Y5, Y0
	HSUM
	VADDSS 4(DX), X0, X0
	VMOVSS X0, 4(DX)
	VMOVAPS Y6, Y0
	HSUM
	VADDSS 8(DX), X0, X0
	VMOVSS X0, 8(DX)
	VMOVAPS Y7, Y0
	HSUM
	VADDSS 12(DX), X0, X0
	VMOVSS X0, 12(DX)
	VZEROUPPER
	RET
