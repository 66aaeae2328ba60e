package gemm

import (
	"fmt"
	"strings"
	"sync/atomic"
	"unsafe"
)

// A kernel is a micro-kernel with the blocking that suits it.
//
// fn computes one mr×nr tile of C from packed panels (see asm_gen.go):
//
//	acc[i][j] = sum_p a[p*mr+i] * b[p*nr+j]        p = 0..kc-1
//	C[i][j]   = alpha*acc[i][j] + beta*C[i][j]    (beta == 0: C is not read)
//
// The driver packs kc×nc blocks of B (L3/L2 resident), mc×kc blocks of A
// (L2 resident) and streams kc×nr micro-panels of B from L1.
type kernel struct {
	name   string
	mr, nr int // register tile
	mc     int // rows of A per packed block, a multiple of mr
	kc     int // depth of a packed block
	nc     int // columns of B per packed block, a multiple of nr
	fn     func(kc int, a, b, c *float32, ldc int, alpha, beta float32)
}

// generic is the portable kernel, used when no assembly kernel applies.
var generic = &kernel{name: "generic", mr: 4, nr: 4, mc: 128, kc: 256, nc: 2048, fn: kernelGeneric}

// available lists the kernels this machine can run, best first.
var available = append(archKernels(), generic)

// active is the kernel Sgemm uses: the best available unless SetKernel
// chose another. Sgemm loads it once per call.
var active atomic.Pointer[kernel]

func init() { active.Store(available[0]) }

// SetKernel selects the micro-kernel Sgemm uses by name ("avx512", "avx2",
// "generic"); "" selects the best available, the default. A name that is
// unknown or that this CPU cannot run is an error naming the available
// kernels, and the kernel in use does not change. It is safe to call
// concurrently with Sgemm; calls already running keep the kernel they
// started with.
func SetKernel(name string) error {
	if name == "" {
		active.Store(available[0])
		return nil
	}
	if k := lookup(name); k != nil {
		active.Store(k)
		return nil
	}
	return fmt.Errorf("gemm: no kernel %q on this machine (available: %s)", name, strings.Join(Kernels(), ", "))
}

// lookup returns the available kernel with the given name, or nil.
func lookup(name string) *kernel {
	for _, k := range available {
		if k.name == name {
			return k
		}
	}
	return nil
}

// Kernels returns the names of the micro-kernels this machine can run,
// best first; the last is always "generic".
func Kernels() []string {
	names := make([]string, len(available))
	for i, k := range available {
		names[i] = k.name
	}
	return names
}

// kernelGeneric is the 4×4 pure-Go micro-kernel. The 16 accumulators and
// the 4 values of B fit the 32 float registers of arm64; amd64 (16
// registers) spills a few, but amd64 has the assembly kernels.
func kernelGeneric(kc int, a, b, c *float32, ldc int, alpha, beta float32) {
	const mr, nr = 4, 4
	ap := unsafe.Slice(a, kc*mr)
	bp := unsafe.Slice(b, kc*nr)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for p := range kc {
		av := (*[mr]float32)(ap[p*mr:])
		bv := (*[nr]float32)(bp[p*nr:])
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		x := av[0]
		c00 += x * b0
		c01 += x * b1
		c02 += x * b2
		c03 += x * b3
		x = av[1]
		c10 += x * b0
		c11 += x * b1
		c12 += x * b2
		c13 += x * b3
		x = av[2]
		c20 += x * b0
		c21 += x * b1
		c22 += x * b2
		c23 += x * b3
		x = av[3]
		c30 += x * b0
		c31 += x * b1
		c32 += x * b2
		c33 += x * b3
	}
	cs := unsafe.Slice(c, 3*ldc+nr)
	store4(cs[0:4:4], c00, c01, c02, c03, alpha, beta)
	store4(cs[ldc:ldc+4:ldc+4], c10, c11, c12, c13, alpha, beta)
	store4(cs[2*ldc:2*ldc+4:2*ldc+4], c20, c21, c22, c23, alpha, beta)
	store4(cs[3*ldc:3*ldc+4:3*ldc+4], c30, c31, c32, c33, alpha, beta)
}

// store4 sets row = alpha*(x0..x3) + beta*row, not reading row when beta == 0.
func store4(row []float32, x0, x1, x2, x3, alpha, beta float32) {
	row = row[:4]
	if beta == 0 {
		row[0], row[1], row[2], row[3] = alpha*x0, alpha*x1, alpha*x2, alpha*x3
		return
	}
	row[0] = alpha*x0 + beta*row[0]
	row[1] = alpha*x1 + beta*row[1]
	row[2] = alpha*x2 + beta*row[2]
	row[3] = alpha*x3 + beta*row[3]
}
