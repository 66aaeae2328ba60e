//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package lock

// Supported reports whether Dir and File take real locks on this system
// (false: they do nothing; see the package documentation).
const Supported = false

// Dir would lock the directory path; this operating system has no flock,
// so it does nothing and returns a release that does nothing.
func Dir(path string) (release func() error, err error) {
	return func() error { return nil }, nil
}

// File would lock the file path; this operating system has no flock, so it
// creates nothing and returns a release that does nothing.
func File(path string) (release func() error, err error) {
	return func() error { return nil }, nil
}
