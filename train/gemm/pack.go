package gemm

// packA copies the mc×kc block of op(A) starting at row i0, column p0 into
// dst as ceil(mc/mr) micro-panels of kc×mr floats each, stored k-major:
//
//	dst[r*kc*mr + q*mr + i] = op(A)[i0 + r*mr + i][p0 + q]
//
// Rows past mc in the last panel are zero.
func packA(dst []float32, mr int, p *problem, i0, mc, p0, kc int) {
	a, lda := p.a, p.lda
	for r := 0; r*mr < mc; r++ {
		panel := dst[r*kc*mr : (r+1)*kc*mr]
		rows := min(mr, mc-r*mr)
		row0 := i0 + r*mr
		if p.aTrans {
			// op(A)[i][q] = a[q*lda + i]: mr contiguous values per q.
			if hasTranspose && rows == 12 && mr == 12 { // the AVX-512 tile, in assembly, not a memmove call per q
				src := a[p0*lda+row0:]
				_, _ = src[(kc-1)*lda+11], panel[kc*12-1]
				copyRows12(&panel[0], &src[0], lda, kc)
				continue
			}
			for q := range kc {
				src := a[(p0+q)*lda+row0:][:rows]
				d := panel[q*mr : q*mr+mr]
				copy(d, src)
				clear(d[rows:])
			}
			continue
		}
		// op(A)[i][q] = a[i*lda + q]: one row of A is one lane of the panel.
		transpose(panel, mr, a[row0*lda+p0:], lda, rows, kc)
		if rows < mr {
			for q := range kc {
				clear(panel[q*mr+rows : q*mr+mr])
			}
		}
	}
}

// packB copies the kc×nc block of op(B) starting at row p0, column j0 into
// dst as ceil(nc/nr) micro-panels of kc×nr floats each:
//
//	dst[s*kc*nr + q*nr + j] = op(B)[p0 + q][j0 + s*nr + j]
//
// Columns past nc in the last panel are zero.
func packB(dst []float32, nr int, p *problem, p0, kc, j0, nc int) {
	b, ldb := p.b, p.ldb
	for s := 0; s*nr < nc; s++ {
		panel := dst[s*kc*nr : (s+1)*kc*nr]
		cols := min(nr, nc-s*nr)
		col0 := j0 + s*nr
		if !p.bTrans {
			// op(B)[q][j] = b[q*ldb + j]: nr contiguous values per q.
			if hasTranspose && cols == nr && nr%8 == 0 {
				src := b[p0*ldb+col0:]
				_ = src[(kc-1)*ldb+nr-1]
				copyRows(&panel[0], &src[0], ldb, kc, nr/8)
				continue
			}
			if hasTranspose && cols == 16 && nr == 32 { // a half panel (48 = 32 + 16 columns), in assembly
				src := b[p0*ldb+col0:]
				_, _ = src[(kc-1)*ldb+15], panel[kc*32-1]
				copyRowsHalf32(&panel[0], &src[0], ldb, kc)
				continue
			}
			for q := range kc {
				src := b[(p0+q)*ldb+col0:][:cols]
				d := panel[q*nr : q*nr+nr]
				copy(d, src)
				clear(d[cols:])
			}
			continue
		}
		// op(B)[q][j] = b[j*ldb + q]: one row of B is one lane of the panel.
		transpose(panel, nr, b[col0*ldb+p0:], ldb, cols, kc)
		if cols < nr {
			for q := range kc {
				clear(panel[q*nr+cols : q*nr+nr])
			}
		}
	}
}

// transpose sets dst[q*ldd+i] = src[i*lds+q] for i < rows and q < n, with
// the assembly 8- and 4-row transposes where they apply.
func transpose(dst []float32, ldd int, src []float32, lds int, rows, n int) {
	if rows == 0 || n == 0 {
		return
	}
	// The checks the assembly relies on: both extents are in bounds.
	_ = dst[(n-1)*ldd+rows-1]
	_ = src[(rows-1)*lds+n-1]
	done, n8 := 0, 0 // rows [0, done) × columns [0, n8) are left to assembly
	if hasTranspose && n >= 8 {
		n8 = n &^ 7
		for ; done+8 <= rows; done += 8 {
			transpose8(&dst[done], ldd, &src[done*lds], lds, n8)
		}
		for ; done+4 <= rows; done += 4 {
			transpose4(&dst[done], ldd, &src[done*lds], lds, n8)
		}
	}
	for i := range rows {
		q0 := 0
		if i < done {
			q0 = n8
		}
		s := src[i*lds : i*lds+n]
		for q := q0; q < n; q++ {
			dst[q*ldd+i] = s[q]
		}
	}
}
