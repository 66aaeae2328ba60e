package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a temporary file that becomes the file at its target path on
// Commit. It embeds the *os.File of the temporary file for writing (Write,
// WriteString, ReadFrom, Stat, ...); Name returns the temporary file's
// name. Close is Abort, not (*os.File).Close: a File that is closed
// without Commit leaves no trace.
type File struct {
	*os.File
	path string // the target
	done bool   // Commit or Abort ran
}

// errDone is returned by a second Commit.
var errDone = errors.New("atomicfile: file already committed or aborted")

// Create creates a temporary file beside path (see the package
// documentation for its name) with mode perm, for writing the content of
// path. The directory of path must exist. Nothing at path changes until
// Commit; Abort or Close removes the temporary file.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	// CreateTemp makes 0600; set perm exactly, whatever the umask.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs and closes the temporary file, renames it over the target
// path and syncs the target's directory. If it fails before the rename,
// the temporary file is removed and the target is unchanged; if only the
// directory sync fails, the new file is in place but may not survive a
// crash. After Commit, successful or not, Abort and Close do nothing and
// a second Commit returns an error.
func (f *File) Commit() error {
	if f.done {
		return errDone
	}
	f.done = true
	tmp := f.File.Name()
	err := f.syncClose()
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// syncClose syncs and closes the temporary file.
func (f *File) syncClose() error {
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// CommitNew is Commit that never replaces: the temporary file is linked
// to the target path (link(2) fails if the path exists, atomically, in
// any process on any POSIX file system) and then removed. If the target
// exists it fails with an error wrapping fs.ErrExist and leaves it as it
// was. This is the create-only write of a cache manifest (package
// formats), the local twin of S3's If-None-Match: *.
func (f *File) CommitNew() error {
	if f.done {
		return errDone
	}
	f.done = true
	tmp := f.File.Name()
	defer os.Remove(tmp)
	err := f.syncClose()
	if err == nil {
		err = os.Link(tmp, f.path)
	}
	if err != nil {
		return err
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort closes and removes the temporary file, leaving the target as it
// was. It does nothing after Commit or a previous Abort. The error is
// that of removing the file (a file already gone is not an error).
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	f.File.Close()
	if err := os.Remove(f.File.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Close is Abort, so that
//
//	defer f.Close()
//
// cleans up on every early return and does nothing once Commit ran.
func (f *File) Close() error { return f.Abort() }

// WriteFile writes data to path atomically with mode perm: through Create,
// Write and Commit. The directory of path must exist. On error path is
// unchanged and no temporary file is left.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// WriteFileAll is WriteFile that first creates the missing parent
// directories of path with mode 0755 (before umask), as os.MkdirAll does.
// Directories it made stay if the write fails.
func WriteFileAll(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return WriteFile(path, data, perm)
}
