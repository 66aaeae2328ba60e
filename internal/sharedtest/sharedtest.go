// Package sharedtest holds test helpers shared by packages of every level:
// Dir finds ../shared, the read-only folder of real teachers, tokenizers,
// text and peers beside the repository (CI has it too), and Hold starts a
// helper process that holds a lock or a half-finished write. It imports
// only the standard library, so even the internal tests of formats and its
// subpackages can use it.
package sharedtest

import (
	"os"
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
