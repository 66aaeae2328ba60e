//go:build !unix

package train

// cpuSeconds returns 0: process CPU time is not read on this system.
func cpuSeconds() float64 { return 0 }
