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
