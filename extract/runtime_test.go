package extract

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// requireRuntime returns a loaded Runtime. Without the library the test is
// skipped, except under CI (CI=true), where a missing runtime is a failure:
// `make test` provisions it, so CI must never pass by skipping.
func requireRuntime(t testing.TB) *Runtime {
	t.Helper()
	rt, err := NewRuntime("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("onnxruntime is required in CI: %v", err)
		}
		t.Skipf("onnxruntime not available (run make setup): %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func TestLocateLibraryMissingExplicit(t *testing.T) {
	_, _, err := LocateLibrary(filepath.Join(t.TempDir(), "nope.so"))
	if !errors.Is(err, ErrNoRuntime) {
		t.Fatalf("err = %v, want ErrNoRuntime", err)
	}
	if !strings.Contains(err.Error(), "make setup") || !strings.Contains(err.Error(), "--ort-lib") {
		t.Errorf("error does not name the fix: %v", err)
	}
}

func TestLocateLibraryEnvWins(t *testing.T) {
	f := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvLibraryPath, f)
	p, src, err := LocateLibrary("")
	if err != nil || p != f || src != EnvLibraryPath {
		t.Fatalf("LocateLibrary = %q, %q, %v; want %q from env", p, src, err, f)
	}
	t.Setenv(EnvLibraryPath, f+".missing")
	if _, _, err := LocateLibrary(""); !errors.Is(err, ErrNoRuntime) || !strings.Contains(err.Error(), EnvLibraryPath) {
		t.Fatalf("missing env path: err = %v", err)
	}
}

func TestLocateLibraryNothingFound(t *testing.T) {
	t.Setenv(EnvLibraryPath, "")
	t.Setenv("LD_LIBRARY_PATH", "")
	t.Chdir(t.TempDir())
	p, src, err := LocateLibrary("")
	if err == nil {
		// A system-wide or executable-relative install is legitimately found.
		if src == "project cache" && strings.HasPrefix(p, os.TempDir()) {
			t.Fatalf("found %s in a fresh temp dir", p)
		}
		t.Skipf("a library is installed at %s (%s); nothing-found path not testable here", p, src)
	}
	if !errors.Is(err, ErrNoRuntime) || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("err = %v", err)
	}
}

// A file that exists but is not a shared library must give an error, not a
// cgo panic.
func TestNewRuntimeNotALibrary(t *testing.T) {
	f := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(f, []byte("this is not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(f)
	if err == nil {
		rt.Close()
		t.Fatal("NewRuntime accepted a text file as onnxruntime")
	}
	if !errors.Is(err, ErrNoRuntime) || !strings.Contains(err.Error(), f) {
		t.Fatalf("err = %v; want ErrNoRuntime naming %s", err, f)
	}
}

func TestNewRuntime(t *testing.T) {
	rt := requireRuntime(t)
	if !strings.HasPrefix(rt.Version, RuntimeVersion) {
		t.Errorf("loaded onnxruntime %s from %s, want %s", rt.Version, rt.Lib, RuntimeVersion)
	}
	rt2, err := NewRuntime(rt.Lib)
	if err != nil {
		t.Fatalf("second Runtime in the same process: %v", err)
	}
	if err := rt2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rt2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
