package gemm

import "sync"

// problem is one validated Sgemm call with m, n, k > 0 and alpha != 0.
type problem struct {
	aTrans, bTrans bool
	m, n, k        int
	alpha, beta    float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
	// transC says the problem computes Cᵀ: element (i, j) of the product
	// goes to c[j*ldc + i]. See transposed.
	transC bool
}

// transposed returns the problem computing Cᵀ = op(B)ᵀ·op(A)ᵀ instead of
// C = op(A)·op(B): the n×k matrix op(B)ᵀ is B's storage read with the
// opposite transpose flag, likewise op(A)ᵀ.
func (p *problem) transposed() problem {
	return problem{
		aTrans: !p.bTrans, bTrans: !p.aTrans,
		m: p.n, n: p.m, k: p.k,
		alpha: p.alpha, beta: p.beta,
		a: p.b, lda: p.ldb, b: p.a, ldb: p.lda,
		c: p.c, ldc: p.ldc, transC: !p.transC,
	}
}

// tileUse is the fraction of the kernel's tiles that an m×n product fills.
func tileUse(kn *kernel, m, n int) float64 {
	return float64(m) / float64(roundUp(m, kn.mr)) * float64(n) / float64(roundUp(n, kn.nr))
}

// swapWorthIt reports whether computing Cᵀ fills the register tiles so much
// better that it pays for writing every tile through the transposing merge:
// the case of a narrow C (n = 10 classes) against nr = 32 columns.
func swapWorthIt(kn *kernel, p *problem) bool {
	return p.n < kn.nr && tileUse(kn, p.n, p.m) > 1.5*tileUse(kn, p.m, p.n)
}

// minFlopsPerThread is the least work (2·m·n·k) worth a goroutine of its
// own: 16.8 Mflop, about 80 µs of the AVX-512 kernel. Below it the packing
// each goroutine repeats and the wake-up cost more than a second core
// gains: 784-128-10 training steps (25.7 Mflop products) ran 10–30% faster
// serial than split in two.
const minFlopsPerThread = 1 << 24

// run computes p with kernel kn on at most threads goroutines. C is cut into
// a tm×tn grid of blocks aligned to the register tile; each block is computed
// by one goroutine in the same order as a serial call. Block edges fall on
// tile edges and the k blocking depends on k alone, so every element of C
// gets the same sums whatever the thread count.
//
// A non-nil buf (with threads = 1) holds the packing buffers instead of
// the pool.
func run(kn *kernel, p *problem, threads int, buf *buffers) {
	if swapWorthIt(kn, p) {
		q := p.transposed()
		p = &q
	}
	if buf != nil {
		serialIn(buf, kn, p, 0, p.m, 0, p.n)
		return
	}
	tm, tn := grid(kn, p, threads)
	if tm*tn == 1 {
		serial(kn, p, 0, p.m, 0, p.n)
		return
	}
	q := *p // a copy for the goroutines, so the serial path does not allocate
	var wg sync.WaitGroup
	for bi := range tm {
		i0, i1 := cut(p.m, tm, kn.mr, bi), cut(p.m, tm, kn.mr, bi+1)
		for bj := range tn {
			j0, j1 := cut(p.n, tn, kn.nr, bj), cut(p.n, tn, kn.nr, bj+1)
			if i0 == i1 || j0 == j1 {
				continue
			}
			if bi == tm-1 && bj == tn-1 {
				serial(kn, &q, i0, i1-i0, j0, j1-j0)
				continue
			}
			wg.Go(func() { serial(kn, &q, i0, i1-i0, j0, j1-j0) })
		}
	}
	wg.Wait()
}

// cut returns the start of block b of n items split into parts blocks whose
// boundaries are multiples of align (the last block takes the remainder).
func cut(n, parts, align, b int) int {
	if b >= parts {
		return n
	}
	tiles := (n + align - 1) / align
	return min(n, (tiles*b/parts)*align)
}

// grid chooses how many blocks to cut the rows (tm) and columns (tn) of C
// into for at most threads goroutines: as many goroutines as the work pays
// for, then the split that packs the least: every column block packs its
// own copy of A (m·k floats) and every row block its own copy of B (k·n).
func grid(kn *kernel, p *problem, threads int) (tm, tn int) {
	flops := 2 * float64(p.m) * float64(p.n) * float64(p.k)
	t := min(threads, int(flops/minFlopsPerThread))
	if t <= 1 {
		return 1, 1
	}
	rowTiles := (p.m + kn.mr - 1) / kn.mr
	colTiles := (p.n + kn.nr - 1) / kn.nr
	for ; t > 1; t-- {
		best := -1.0
		for d := 1; d <= t; d++ {
			if t%d != 0 || d > rowTiles || t/d > colTiles {
				continue
			}
			cost := float64(t/d)*float64(p.m) + float64(d)*float64(p.n)
			if best < 0 || cost < best {
				best, tm, tn = cost, d, t/d
			}
		}
		if best >= 0 {
			return tm, tn
		}
	}
	return 1, 1
}

// buffers holds one goroutine's packed blocks.
type buffers struct {
	a, b []float32
	tile []float32
	tt   []float32 // a tile transposed, for mergeT
}

var pool = sync.Pool{New: func() any { return new(buffers) }}

// grow returns s resliced to n floats, reallocated if too small.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// serial computes the m×n block of C at (i0, j0) on the calling goroutine,
// GotoBLAS style: for each nc-column block of B and kc-deep slice of k, pack
// op(B) into nr-wide panels, then for each mc-row block of A pack op(A) into
// mr-tall panels and run the micro-kernel over every mr×nr tile.
func serial(kn *kernel, p *problem, i0, m, j0, n int) {
	buf := pool.Get().(*buffers)
	serialIn(buf, kn, p, i0, m, j0, n)
	pool.Put(buf)
}

// serialIn is serial with the packing buffers buf.
func serialIn(buf *buffers, kn *kernel, p *problem, i0, m, j0, n int) {
	mr, nr := kn.mr, kn.nr
	// Balanced block sizes: as few blocks as the limits allow, equal sizes.
	kc := balance(p.k, kn.kc, 8)
	mc := balance(m, kn.mc, mr)
	nc := balance(n, kn.nc, nr)

	buf.a = grow(buf.a, roundUp(mc, mr)*kc)
	buf.b = grow(buf.b, roundUp(nc, nr)*kc)
	buf.tile = grow(buf.tile, mr*nr)
	buf.tt = grow(buf.tt, mr*nr)
	ap, bp, tile, tt := buf.a, buf.b, buf.tile, buf.tt
	c, ldc := p.c, p.ldc

	for jc := 0; jc < n; jc += nc {
		ncb := min(nc, n-jc)
		for pc := 0; pc < p.k; pc += kc {
			kcb := min(kc, p.k-pc)
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			packB(bp, nr, p, pc, kcb, j0+jc, ncb)
			for ic := 0; ic < m; ic += mc {
				mcb := min(mc, m-ic)
				packA(ap, mr, p, i0+ic, mcb, pc, kcb)
				for jr := 0; jr < ncb; jr += nr {
					bPanel := &bp[jr*kcb]
					cols := min(nr, ncb-jr)
					for ir := 0; ir < mcb; ir += mr {
						aPanel := &ap[ir*kcb]
						rows := min(mr, mcb-ir)
						if p.transC {
							kn.fn(kcb, aPanel, bPanel, &tile[0], nr, 1, 0)
							mergeT(c[(j0+jc+jr)*ldc+i0+ic+ir:], ldc, tile, nr, rows, cols, p.alpha, beta, tt)
							continue
						}
						ci := (i0+ic+ir)*ldc + j0 + jc + jr
						if rows == mr && cols == nr {
							kn.fn(kcb, aPanel, bPanel, &c[ci], ldc, p.alpha, beta)
							continue
						}
						kn.fn(kcb, aPanel, bPanel, &tile[0], nr, 1, 0)
						merge(c[ci:], ldc, tile, nr, rows, cols, p.alpha, beta)
					}
				}
			}
		}
	}
}

// merge sets the rows×cols block C = alpha*T + beta*C, where T is the tile
// with row stride ldt; C is not read when beta == 0.
func merge(c []float32, ldc int, t []float32, ldt, rows, cols int, alpha, beta float32) {
	for i := range rows {
		dst := c[i*ldc : i*ldc+cols]
		src := t[i*ldt : i*ldt+cols]
		if beta == 0 {
			for j, v := range src {
				dst[j] = alpha * v
			}
			continue
		}
		for j, v := range src {
			dst[j] = alpha*v + beta*dst[j]
		}
	}
}

// mergeT is merge into Cᵀ: c[j*ldc + i] = alpha*t[i*ldt + j] + beta*c[j*ldc + i],
// by transposing the tile into tt (cols×rows, with the assembly 8- and
// 4-row transposes) and merging its rows, which are contiguous in C.
func mergeT(c []float32, ldc int, t []float32, ldt, rows, cols int, alpha, beta float32, tt []float32) {
	transpose(tt, rows, t, ldt, rows, cols)
	merge(c, ldc, tt, rows, cols, rows, alpha, beta)
}

// balance returns the block size for n items in blocks of at most limit:
// the fewest blocks, of equal size rounded up to a multiple of align.
func balance(n, limit, align int) int {
	blocks := (n + limit - 1) / limit
	size := roundUp((n+blocks-1)/blocks, align)
	return min(size, limit)
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }
