package main

import (
	"fmt"
	"math"
	"runtime"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/store"
)

// Bounds shared by the commands' numeric flags, each named in --help.
const (
	// maxBatch bounds every rows-per-run flag (--batch, --topk).
	maxBatch = 1 << 20
	// threadsPerCore bounds --threads at that many threads per core: more
	// only adds contention, and an absurd count would exhaust memory.
	threadsPerCore = 4
)

// maxThreads is the largest --threads accepted on this machine.
func maxThreads() int { return threadsPerCore * runtime.NumCPU() }

// checkRange returns a usage error naming flag when v is outside lo..hi.
func checkRange(flag string, v, lo, hi int) error {
	if v < lo || v > hi {
		return usageError("%s %d: want %d..%d", flag, v, lo, hi)
	}
	return nil
}

// checkThreads checks a --threads value: 0 (all cores) to maxThreads.
func checkThreads(n int) error {
	if n < 0 || n > maxThreads() {
		return usageError("--threads %d: want 0 (all cores) to %d (%d per core on this machine's %d)", n, maxThreads(), threadsPerCore, runtime.NumCPU())
	}
	return nil
}

// checkFloat returns a usage error naming flag when v is NaN or ±Inf, or
// outside [lo, hi].
func checkFloat(flag string, v, lo, hi float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < lo || v > hi {
		return usageError("%s %v: want a finite value in [%g, %g]", flag, v, lo, hi)
	}
	return nil
}

// maxPreprocess bounds the magnitude of --scale, --mean and --std: larger
// values turn any input into zeros or overflow, never a useful
// normalization.
const maxPreprocess = 1e6

// parsePreprocess parses --scale, --mean, --std and --reshape: finite
// numbers, a positive scale, positive standard deviations, all of
// magnitude at most maxPreprocess.
func parsePreprocess(scale, mean, std, reshape string) (formats.Preprocess, error) {
	var p formats.Preprocess
	var err error
	if scale != "" {
		if p.Scale, err = extract.ParseNumber(scale); err != nil {
			return p, usageError("--scale: %v", err)
		}
		if !(p.Scale > 0 && p.Scale <= maxPreprocess) {
			return p, usageError("--scale %s: want a positive factor up to %g", scale, maxPreprocess)
		}
	}
	if p.Mean, err = extract.ParseFloatList(mean); err != nil {
		return p, usageError("--mean: %v", err)
	}
	for _, m := range p.Mean {
		if math.Abs(m) > maxPreprocess {
			return p, usageError("--mean %s: want values in [-%g, %g]", mean, maxPreprocess, maxPreprocess)
		}
	}
	if p.Std, err = extract.ParseFloatList(std); err != nil {
		return p, usageError("--std: %v", err)
	}
	for _, s := range p.Std {
		if !(s > 0 && s <= maxPreprocess) {
			return p, usageError("--std %s: want positive standard deviations up to %g", std, maxPreprocess)
		}
	}
	if p.Shape, err = extract.ParseShape(reshape); err != nil {
		return p, usageError("--reshape: %v", err)
	}
	return p, nil
}

// checkPaths is guard.Check with its refusal as a usage error: an output
// pointed at an input is a mistake in the arguments. A location that does
// not parse (an unknown scheme, a URL without a bucket) is a failure (exit
// 1), as every other bad location is.
func checkPaths(inputs, outputs []guard.Path) error {
	for _, p := range append(append([]guard.Path(nil), inputs...), outputs...) {
		if p.Path == "" {
			continue
		}
		if _, err := store.Parse(p.Path); err != nil {
			return fmt.Errorf("%s: %v", p.Flag, err)
		}
	}
	if err := guard.Check(inputs, outputs); err != nil {
		return usageError("%v", err)
	}
	return nil
}
