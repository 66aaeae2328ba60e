package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// Rename renames oldpath to newpath (a file or a directory, as os.Rename)
// and makes the rename durable: it syncs newpath's directory, and
// oldpath's too when that is another one. If the rename fails nothing is
// synced; if a sync fails the rename has happened but may not survive a
// crash.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	newDir, oldDir := filepath.Dir(newpath), filepath.Dir(oldpath)
	if err := SyncDir(newDir); err != nil {
		return err
	}
	if oldDir != newDir {
		return SyncDir(oldDir)
	}
	return nil
}

// SyncDir fsyncs the directory dir, making the creation, removal and
// renaming of its entries durable. A file system that cannot sync a
// directory (EINVAL, ENOTSUP) is not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}

// MkdirAll is os.MkdirAll(dir, 0o755) that also returns the directories
// it created, deepest first, so a caller that fails later can remove what
// it made (RemoveEmptyDirs) and leave nothing behind.
func MkdirAll(dir string) (created []string, err error) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return created, nil
}

// RemoveEmptyDirs removes dirs in order (deepest first, as MkdirAll
// returns them), stopping at the first that cannot be removed, e.g. one
// that is no longer empty.
func RemoveEmptyDirs(dirs []string) {
	for _, d := range dirs {
		if os.Remove(d) != nil {
			return
		}
	}
}
