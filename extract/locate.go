package extract

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// RuntimeVersion is the onnxruntime release distill is built and tested
// against; `make setup` provisions exactly this version.
const RuntimeVersion = "1.24.3"

// ErrNoRuntime is returned when no onnxruntime shared library can be found
// or loaded. Its message always names the fix.
var ErrNoRuntime = errors.New("extract: onnxruntime shared library not available")

// EnvLibraryPath is the environment variable naming the onnxruntime shared
// library, consulted after an explicit path.
const EnvLibraryPath = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// libraryFix is appended to every "not found" message.
const libraryFix = "run `make setup` in the distill checkout (it fetches onnxruntime " + RuntimeVersion +
	" into .cache/onnxruntime), or pass --ort-lib /path/to/libonnxruntime.so, or set " + EnvLibraryPath

// platformDir and libraryName give the project-cache layout written by
// scripts/setup-ort.sh: .cache/onnxruntime/VERSION/PLATFORM/NAME.
func platformDir() (dir, name string) {
	switch runtime.GOOS + "/" + runtime.GOARCH {
	case "linux/amd64":
		return "linux-x64", "libonnxruntime.so.1"
	case "linux/arm64":
		return "linux-arm64", "libonnxruntime.so.1"
	case "darwin/arm64":
		return "darwin-arm64", "libonnxruntime." + RuntimeVersion + ".dylib"
	}
	return runtime.GOOS + "-" + runtime.GOARCH, "libonnxruntime.so"
}

// LocateLibrary finds the onnxruntime shared library. It tries, in order:
// explicit (the --ort-lib flag) when non-empty, the ONNXRUNTIME_SHARED_LIBRARY_PATH
// environment variable, the project cache (.cache/onnxruntime/<version>/<platform>/
// in the working directory, the executable's directory or any of their
// parents), then the system library directories. An explicit path or
// environment value that does not exist is an error, not a reason to look
// elsewhere. It returns the path and a short description of where it came
// from; the error wraps ErrNoRuntime and lists what was tried.
func LocateLibrary(explicit string) (path, source string, err error) {
	if explicit != "" {
		if isFile(explicit) {
			return explicit, "--ort-lib", nil
		}
		return "", "", fmt.Errorf("%w: --ort-lib %s does not exist; %s", ErrNoRuntime, explicit, libraryFix)
	}
	if env := os.Getenv(EnvLibraryPath); env != "" {
		if isFile(env) {
			return env, EnvLibraryPath, nil
		}
		return "", "", fmt.Errorf("%w: %s=%s does not exist; %s", ErrNoRuntime, EnvLibraryPath, env, libraryFix)
	}
	var tried []string
	plat, name := platformDir()
	rel := filepath.Join(".cache", "onnxruntime", RuntimeVersion, plat, name)
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, s := range starts {
		for dir := s; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, rel)
			if isFile(p) {
				return p, "project cache", nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
		tried = append(tried, filepath.Join(s, "…", rel))
	}
	var sysDirs []string
	for _, env := range []string{"LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"} {
		sysDirs = append(sysDirs, filepath.SplitList(os.Getenv(env))...)
	}
	sysDirs = append(sysDirs, "/usr/local/lib", "/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu",
		"/usr/lib/aarch64-linux-gnu", "/opt/homebrew/lib", "/lib")
	names := []string{"libonnxruntime.so." + RuntimeVersion, "libonnxruntime.so.1", "libonnxruntime.so",
		"libonnxruntime." + RuntimeVersion + ".dylib", "libonnxruntime.dylib"}
	for _, d := range sysDirs {
		if d == "" {
			continue
		}
		for _, n := range names {
			if p := filepath.Join(d, n); isFile(p) {
				return p, "system library path", nil
			}
		}
	}
	tried = append(tried, "system library directories ("+strings.Join(sysDirs, ":")+")")
	return "", "", fmt.Errorf("%w: looked in %s; %s", ErrNoRuntime, strings.Join(tried, ", "), libraryFix)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
