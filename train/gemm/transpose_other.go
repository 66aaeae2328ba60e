//go:build !amd64 || purego

package gemm

// hasTranspose is false: there are no assembly transposes here.
const hasTranspose = false

func transpose8(dst *float32, ldd int, src *float32, lds int, n int) { panic("unreachable") }
func transpose4(dst *float32, ldd int, src *float32, lds int, n int) { panic("unreachable") }
func copyRows(dst *float32, src *float32, lds int, rows int, w8 int) { panic("unreachable") }
func copyRows12(dst *float32, src *float32, lds int, rows int)       { panic("unreachable") }
func copyRowsHalf32(dst *float32, src *float32, lds int, rows int)   { panic("unreachable") }
