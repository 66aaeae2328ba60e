//go:build cgo

package extract

import (
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Runtime owns the process's onnxruntime environment. onnxruntime allows one
// environment per process; Runtimes share it and the last Close destroys it.
type Runtime struct {
	// Lib is the shared library in use, and Source where it was found.
	Lib, Source string
	// Version is the version the library reports.
	Version string
	closed  bool
}

var env struct {
	sync.Mutex
	refs int
	lib  string
}

// NewRuntime locates (see LocateLibrary) and loads the onnxruntime shared
// library and initialises the environment. lib may be empty. Errors wrap
// ErrNoRuntime and name the fix; a missing or broken library never panics.
func NewRuntime(lib string) (*Runtime, error) {
	path, source, err := LocateLibrary(lib)
	if err != nil {
		return nil, err
	}
	env.Lock()
	defer env.Unlock()
	if env.refs > 0 {
		if env.lib != path {
			return nil, fmt.Errorf("extract: onnxruntime already loaded from %s in this process; cannot also load %s", env.lib, path)
		}
	} else {
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("%w: loading %s (from %s): %v; it must be an onnxruntime %s shared library for this platform: %s",
				ErrNoRuntime, path, source, err, RuntimeVersion, libraryFix)
		}
		env.lib = path
	}
	env.refs++
	return &Runtime{Lib: path, Source: source, Version: ort.GetVersion()}, nil
}

// Close releases the Runtime; the environment is destroyed with the last one.
// Close is idempotent.
func (r *Runtime) Close() error {
	env.Lock()
	defer env.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	env.refs--
	if env.refs == 0 {
		return ort.DestroyEnvironment()
	}
	return nil
}
