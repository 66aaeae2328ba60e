//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Supported reports whether Dir and File take real locks on this system
// (false: they do nothing; see the package documentation).
const Supported = true

// Dir takes an exclusive lock on the directory path itself, opened
// read-only; it creates nothing. If another open file holds the lock it
// fails at once (after forkGrace, 200 ms) with an error wrapping ErrLocked; a missing path is an
// error wrapping fs.ErrNotExist. release unlocks; it may be called more
// than once.
func Dir(path string) (release func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil {
		f.Close()
		return nil, err
	} else if !st.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "lock", Path: path, Err: syscall.ENOTDIR}
	}
	if err := flock(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return once(f.Close), nil
}

// File takes an exclusive lock on the file path, creating it (empty, mode
// 0644) if it does not exist; its directory must exist. If another open
// file holds the lock it fails at once with an error wrapping ErrLocked.
// release removes the file, then unlocks it; it may be called more than
// once.
func File(path string) (release func() error, err error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := flock(f, path); err != nil {
			f.Close()
			return nil, err
		}
		// The previous holder removes path before unlocking: if it did so
		// after we opened it, we hold a file no one else will open, and
		// must lock the one now at path instead.
		same, err := isAt(f, path)
		if err != nil {
			f.Close()
			return nil, err
		}
		if !same {
			f.Close()
			continue
		}
		return once(func() error {
			var err error
			if same, serr := isAt(f, path); serr == nil && same {
				err = os.Remove(path)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}), nil
	}
}

// isAt reports whether path names the open file f; a missing path is
// false, not an error.
func isAt(f *os.File, path string) (bool, error) {
	fst, err := f.Stat()
	if err != nil {
		return false, err
	}
	pst, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fst, pst), nil
}

// flock takes an exclusive non-blocking lock on f. Contention is an error
// wrapping ErrLocked; a file system that cannot lock is no error (see the
// package documentation).
// forkGrace is how long a held lock is retried before ErrLocked.
const forkGrace = 200 * time.Millisecond

func flock(f *os.File, path string) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	// A lock found held is tried again for up to forkGrace: a process
	// that forks a child while holding a lock shares its descriptor with
	// the child until the child's exec closes it (O_CLOEXEC), so a lock
	// just released can look held for a moment. A real holder still
	// fails the caller well within a second.
	for deadline := time.Now().Add(forkGrace); ; time.Sleep(forkGrace / 20) {
		if err := rc.Control(func(fd uintptr) {
			for {
				ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
				if ferr != syscall.EINTR {
					return
				}
			}
		}); err != nil {
			return err
		}
		if !errors.Is(ferr, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
	}
	switch {
	case ferr == nil:
		return nil
	case errors.Is(ferr, syscall.EWOULDBLOCK):
		return fmt.Errorf("%w: %s", ErrLocked, path)
	case errors.Is(ferr, syscall.ENOLCK), errors.Is(ferr, errors.ErrUnsupported), errors.Is(ferr, syscall.EBADF):
		return nil // cannot lock here: best-effort, as documented
	}
	return &fs.PathError{Op: "flock", Path: path, Err: ferr}
}
