//go:build !amd64 || purego

package gemm

// archKernels returns no kernels: only the generic one exists here.
func archKernels() []*kernel { return nil }
