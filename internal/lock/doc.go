// Package lock owns the one way distill keeps two processes from writing
// the same output at once: an exclusive, non-blocking advisory lock that
// the second process fails to take at once, with an error wrapping
// ErrLocked, instead of both writing and corrupting each other's files.
// "At once" is after 200 ms of retries: a lock just released by a process
// that forked a child can look held until the child's exec closes the
// inherited descriptor (a flake the cache-writer tests hit in CI).
// formats locks a cache directory for the life of a CacheWriter (extract);
// train locks its checkpoint for a whole run.
//
// # Sections
//
//   - Directories: Dir.
//   - Files: File.
//   - Errors: ErrLocked.
//   - Platform: Supported.
//
// # Semantics
//
// A lock is flock(2) with LOCK_EX|LOCK_NB on a descriptor this package
// opens. It is held until release is called or the process exits, however
// it exits: the kernel drops it on SIGKILL too, so a crash never leaves a
// stale lock. It belongs to the open file, not to the process, so a second
// Dir or File on the same path conflicts even from the same process. It is
// advisory: it keeps out processes that lock, nothing else (readers of a
// cache or checkpoint do not lock, and need not: files appear atomically,
// see package atomicfile).
//
// Dir locks a directory through a read-only descriptor of the directory
// itself, so it creates nothing. Use it for an object that stays in
// place, such as a cache directory.
//
// File locks a file, creating it if needed, for an object that is
// replaced while locked, such as a checkpoint directory swapped by rename
// (locking the directory would lock the old copy). Its release removes the
// file, before unlocking it; a process that opened the file before the
// removal and then wins the lock notices that its file is no longer the one
// at path and tries again. After a crash the empty file stays, unlocked;
// the next File on the path takes it over and removes it on release.
//
// # Unsupported systems
//
// Some network and FUSE file systems do not support flock: they return
// ENOLCK or ENOTSUP, and NFSv4 returns EBADF for an exclusive lock on a
// read-only descriptor. There, as atomicfile tolerates directories it
// cannot fsync, Dir and File take no lock and return no error: two writers
// are then not detected. On operating systems without flock (Windows,
// Plan 9, js, wasip1, Solaris) Dir and File do nothing at all (no file is
// created) and always succeed; Supported is false there.
//
// # Example
//
//	release, err := lock.Dir("cache")
//	if errors.Is(err, lock.ErrLocked) {
//		return fmt.Errorf("another process is writing cache: %w", err)
//	} else if err != nil {
//		return err
//	}
//	defer release()
package lock
