//go:build amd64 && !purego

#include "textflag.h"

// Operand order is Go's: the destination last. VFMADD213PS a, b, c sets
// c = b·c + a; VFMADD231PS a, b, c sets c = b·a + c; VFNMADD231PS a, b, c
// sets c = c − b·a. VMAXPS x, lo, d returns x (the second source in Intel's
// order) when either is NaN, so NaN propagates through the clamps.

DATA expc<>+0(SB)/4, $0xc2aeac4f // lo -87.33654
DATA expc<>+4(SB)/4, $0x42b00000 // hi 88.0
DATA expc<>+8(SB)/4, $0x3fb8aa3b // log2e 1.4426950408889634
DATA expc<>+12(SB)/4, $0x3f318000 // c1 0.693359375
DATA expc<>+16(SB)/4, $0xb95e8083 // c2 -0.00021219444
DATA expc<>+20(SB)/4, $0x3f800000 // one 1.0
DATA expc<>+24(SB)/4, $0x39506967 // p0 0.000198756915
GLOBL expc<>(SB), RODATA|NOPTR, $28

DATA expv<>+0(SB)/4, $0x3ab743ce // p1 0.0013981999507
DATA expv<>+4(SB)/4, $0x3ab743ce
DATA expv<>+8(SB)/4, $0x3ab743ce
DATA expv<>+12(SB)/4, $0x3ab743ce
DATA expv<>+16(SB)/4, $0x3ab743ce
DATA expv<>+20(SB)/4, $0x3ab743ce
DATA expv<>+24(SB)/4, $0x3ab743ce
DATA expv<>+28(SB)/4, $0x3ab743ce
DATA expv<>+32(SB)/4, $0x3c088908 // p2 0.0083334519073
DATA expv<>+36(SB)/4, $0x3c088908
DATA expv<>+40(SB)/4, $0x3c088908
DATA expv<>+44(SB)/4, $0x3c088908
DATA expv<>+48(SB)/4, $0x3c088908
DATA expv<>+52(SB)/4, $0x3c088908
DATA expv<>+56(SB)/4, $0x3c088908
DATA expv<>+60(SB)/4, $0x3c088908
DATA expv<>+64(SB)/4, $0x3d2aa9c1 // p3 0.041665795894
DATA expv<>+68(SB)/4, $0x3d2aa9c1
DATA expv<>+72(SB)/4, $0x3d2aa9c1
DATA expv<>+76(SB)/4, $0x3d2aa9c1
DATA expv<>+80(SB)/4, $0x3d2aa9c1
DATA expv<>+84(SB)/4, $0x3d2aa9c1
DATA expv<>+88(SB)/4, $0x3d2aa9c1
DATA expv<>+92(SB)/4, $0x3d2aa9c1
DATA expv<>+96(SB)/4, $0x3e2aaaaa // p4 0.16666665459
DATA expv<>+100(SB)/4, $0x3e2aaaaa
DATA expv<>+104(SB)/4, $0x3e2aaaaa
DATA expv<>+108(SB)/4, $0x3e2aaaaa
DATA expv<>+112(SB)/4, $0x3e2aaaaa
DATA expv<>+116(SB)/4, $0x3e2aaaaa
DATA expv<>+120(SB)/4, $0x3e2aaaaa
DATA expv<>+124(SB)/4, $0x3e2aaaaa
DATA expv<>+128(SB)/4, $0x3f000000 // p5 0.50000001201
DATA expv<>+132(SB)/4, $0x3f000000
DATA expv<>+136(SB)/4, $0x3f000000
DATA expv<>+140(SB)/4, $0x3f000000
DATA expv<>+144(SB)/4, $0x3f000000
DATA expv<>+148(SB)/4, $0x3f000000
DATA expv<>+152(SB)/4, $0x3f000000
DATA expv<>+156(SB)/4, $0x3f000000
DATA expv<>+160(SB)/4, $127 // the exponent bias
DATA expv<>+164(SB)/4, $127
DATA expv<>+168(SB)/4, $127
DATA expv<>+172(SB)/4, $127
DATA expv<>+176(SB)/4, $127
DATA expv<>+180(SB)/4, $127
DATA expv<>+184(SB)/4, $127
DATA expv<>+188(SB)/4, $127
GLOBL expv<>(SB), RODATA|NOPTR, $192

// func expSumAVX2(dst, src *float32, n int, scale, bias float32) float32
// dst[i] = exp(src[i]·scale + bias) (the steps of expGo in vexp.go), and
// the sum of dst in eight lanes.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), BX
	VBROADCASTSS scale+24(FP), Y15
	VBROADCASTSS bias+28(FP), Y14
	VBROADCASTSS expc<>+0(SB), Y13  // lo
	VBROADCASTSS expc<>+4(SB), Y12  // hi
	VBROADCASTSS expc<>+8(SB), Y11  // log₂e
	VBROADCASTSS expc<>+12(SB), Y10 // c1
	VBROADCASTSS expc<>+16(SB), Y9  // c2
	VBROADCASTSS expc<>+20(SB), Y8  // 1
	VBROADCASTSS expc<>+24(SB), Y6  // p0
	VXORPS Y7, Y7, Y7               // the sum
	SHLQ $2, BX
	XORQ R8, R8
exp_loop:
	CMPQ R8, BX
	JGE exp_done
	VMOVUPS (SI)(R8*1), Y0
	VFMADD213PS Y14, Y15, Y0        // x = src·scale + bias
	VMAXPS Y0, Y13, Y0              // max(lo, x)
	VMINPS Y0, Y12, Y0              // min(hi, x)
	VMULPS Y11, Y0, Y1              // x·log₂e
	VCVTPS2DQ Y1, Y2                // n = round to nearest even
	VCVTDQ2PS Y2, Y1
	VFNMADD231PS Y10, Y1, Y0        // r = x − n·c1
	VFNMADD231PS Y9, Y1, Y0         // r −= n·c2
	VMULPS Y0, Y0, Y3               // r²
	VMOVAPS Y6, Y4                  // P = p0
	VFMADD213PS expv<>+0(SB), Y0, Y4   // P·r + p1
	VFMADD213PS expv<>+32(SB), Y0, Y4  // P·r + p2
	VFMADD213PS expv<>+64(SB), Y0, Y4  // P·r + p3
	VFMADD213PS expv<>+96(SB), Y0, Y4  // P·r + p4
	VFMADD213PS expv<>+128(SB), Y0, Y4 // P·r + p5
	VADDPS Y8, Y0, Y5               // 1 + r
	VFMADD231PS Y4, Y3, Y5          // 1 + r + r²·P
	VPADDD expv<>+160(SB), Y2, Y2   // n + 127
	VPSLLD $23, Y2, Y2              // 2^n
	VMULPS Y2, Y5, Y5
	VMOVUPS Y5, (DI)(R8*1)
	VADDPS Y5, Y7, Y7
	ADDQ $32, R8
	JMP exp_loop
exp_done:
	VEXTRACTF128 $1, Y7, X1
	VADDPS X1, X7, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), BX
	SHLQ $2, BX
	VMOVUPS (SI), Y0
	MOVQ $32, R8
max_loop:
	CMPQ R8, BX
	JGE max_done
	VMAXPS (SI)(R8*1), Y0, Y0
	ADDQ $32, R8
	JMP max_loop
max_done:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VMAXPS X1, X0, X0
	VMOVSHDUP X0, X1
	VMAXSS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func scaleAVX2(x *float32, n int, a float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), BX
	VBROADCASTSS a+16(FP), Y1
	SHLQ $2, BX
	XORQ R8, R8
scale_loop:
	CMPQ R8, BX
	JGE scale_done
	VMULPS (DI)(R8*1), Y1, Y0
	VMOVUPS Y0, (DI)(R8*1)
	ADDQ $32, R8
	JMP scale_loop
scale_done:
	VZEROUPPER
	RET

// func dotAVX2(x, y *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), BX
	SHLQ $2, BX
	XORQ R8, R8
	VXORPS Y0, Y0, Y0
dot_loop:
	CMPQ R8, BX
	JGE dot_done
	VMOVUPS (SI)(R8*1), Y1
	VFMADD231PS (DI)(R8*1), Y1, Y0 // Y0 += x·y
	ADDQ $32, R8
	JMP dot_loop
dot_done:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func mulSubAVX2(d, p *float32, n int, s float32)
// d = p·(d − s)
TEXT ·mulSubAVX2(SB), NOSPLIT, $0-28
	MOVQ d+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), BX
	VBROADCASTSS s+24(FP), Y2
	SHLQ $2, BX
	XORQ R8, R8
ms_loop:
	CMPQ R8, BX
	JGE ms_done
	VMOVUPS (DI)(R8*1), Y0
	VSUBPS Y2, Y0, Y0              // d − s
	VMULPS (SI)(R8*1), Y0, Y0      // p·(d − s)
	VMOVUPS Y0, (DI)(R8*1)
	ADDQ $32, R8
	JMP ms_loop
ms_done:
	VZEROUPPER
	RET
