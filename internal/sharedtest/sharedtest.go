// Package sharedtest holds test helpers shared by packages of every level:
// Dir finds ../shared, the read-only folder of real teachers, tokenizers,
// text and peers beside the repository (CI has it too), RequirePyTorch
// checks the interpreter those peers run on, and Hold starts a helper
// process that holds a lock or a half-finished write; Median is what
// interleaved benchmarks report. It imports
// only the standard library, so even the internal tests of formats and its
// subpackages can use it.
package sharedtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the absolute path of ../shared joined with elem. When it is
// missing the test fails under CI (CI set), where make test must never
// pass by skipping, and is skipped otherwise, saying why.
func Dir(t testing.TB, elem ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0) // <repo>/internal/sharedtest/sharedtest.go
	dir := filepath.Join(append([]string{filepath.Dir(file), "..", "..", "..", "shared"}, elem...)...)
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("../shared is required in CI: %v", err)
		}
		t.Skipf("../shared not found: %v", err)
	}
	return dir
}

// Python is the interpreter the PyTorch peers in ../shared/peers run on:
// Debian's, with python3-torch and numpy (the pyenv python3 has neither).
const Python = "/usr/bin/python3"

// RequirePyTorch checks that Python imports torch and numpy, failing the
// test under CI and skipping it otherwise when it does not.
func RequirePyTorch(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import torch, numpy").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-torch is required in CI (.ci/run installs it): %v", err)
		}
		t.Skipf("python3-torch not installed: %v", err)
	}
}
