package store

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// split returns the directory of location s and its base name.
func split(ctx context.Context, s string) (*Dir, string, error) {
	l, err := Parse(s)
	if err != nil {
		return nil, "", err
	}
	if l.Remote() && l.Key == "" {
		return nil, "", fmt.Errorf("%s: a file location needs a key after the bucket", s)
	}
	d, err := DirAt(ctx, l.Parent())
	if err != nil {
		return nil, "", err
	}
	return d, l.Base(), nil
}

// Open opens the file at location s for reading.
func Open(ctx context.Context, s string) (*File, error) {
	d, name, err := split(ctx, s)
	if err != nil {
		return nil, err
	}
	return d.Open(ctx, name)
}

// Stat returns the entry of the file at location s.
func Stat(ctx context.Context, s string) (Entry, error) {
	d, name, err := split(ctx, s)
	if err != nil {
		return Entry{}, err
	}
	return d.Stat(ctx, name)
}

// ReadFile reads the whole file at location s (see Dir.ReadFile).
func ReadFile(ctx context.Context, s string, max int64) ([]byte, error) {
	d, name, err := split(ctx, s)
	if err != nil {
		return nil, err
	}
	return d.ReadFile(ctx, name, max)
}

// Create starts writing the file at location s (see Dir.Create); a local
// parent directory is created if missing.
func Create(ctx context.Context, s string) (*Writer, error) {
	d, name, err := split(ctx, s)
	if err != nil {
		return nil, err
	}
	if _, err := d.MkdirAll(); err != nil {
		return nil, err
	}
	return d.Create(ctx, name)
}

// IsDir reports whether location s is a directory: a local directory, or
// a prefix with keys below it.
func IsDir(ctx context.Context, s string) (bool, error) {
	l, err := Parse(s)
	if err != nil {
		return false, err
	}
	if !l.Remote() {
		st, err := os.Stat(l.Key)
		return err == nil && st.IsDir(), nil
	}
	d, err := DirAt(ctx, l)
	if err != nil {
		return false, err
	}
	return d.Exists(ctx)
}

// Fetch returns a local path holding the file at location s, for code that
// needs one (onnxruntime opens a model by path): s itself if local, else a
// copy downloaded into a new temporary directory that cleanup removes. The
// copy keeps s's base name.
func Fetch(ctx context.Context, s string) (path string, cleanup func(), err error) {
	if !IsRemote(s) {
		l, err := Parse(s)
		if err != nil {
			return "", nil, err
		}
		return l.Key, func() {}, nil
	}
	f, err := Open(ctx, s)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	tmp, err := os.MkdirTemp("", "distill-fetch-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	path = filepath.Join(tmp, Base(s))
	if err := copyTo(path, f); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}

func copyTo(path string, r io.Reader) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// FetchDir is Fetch for a directory: every file below the location s
// (recursively) is downloaded into a new temporary directory, which is
// returned. A local s is returned as it is. An empty prefix is an error
// wrapping fs.ErrNotExist.
func FetchDir(ctx context.Context, s string) (path string, cleanup func(), err error) {
	if !IsRemote(s) {
		l, err := Parse(s)
		if err != nil {
			return "", nil, err
		}
		return l.Key, func() {}, nil
	}
	d, err := OpenDir(ctx, s)
	if err != nil {
		return "", nil, err
	}
	tmp, err := os.MkdirTemp("", "distill-fetch-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	n := 0
	var walk func(d *Dir, local string) error
	walk = func(d *Dir, local string) error {
		es, err := d.List(ctx)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.IsDir {
				sub := filepath.Join(local, e.Name)
				if err := os.MkdirAll(sub, 0o755); err != nil {
					return err
				}
				if err := walk(d.Sub(e.Name), sub); err != nil {
					return err
				}
				continue
			}
			f, err := d.Open(ctx, e.Name)
			if err != nil {
				return err
			}
			err = copyTo(filepath.Join(local, e.Name), f)
			f.Close()
			if err != nil {
				return err
			}
			n++
		}
		return nil
	}
	if err := walk(d, tmp); err != nil {
		cleanup()
		return "", nil, err
	}
	if n == 0 {
		cleanup()
		return "", nil, fmt.Errorf("%s: %w (no objects below this prefix)", s, fs.ErrNotExist)
	}
	return tmp, cleanup, nil
}

// Upload copies the local file path to location s (a streamed upload that
// appears whole on success).
func Upload(ctx context.Context, path, s string) (Written, error) {
	f, err := os.Open(path)
	if err != nil {
		return Written{}, err
	}
	defer f.Close()
	w, err := Create(ctx, s)
	if err != nil {
		return Written{}, err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Abort()
		return Written{}, err
	}
	return w.Commit()
}

// UploadDir copies every file below the local directory dir to the
// location s, keeping relative names; first (if non-empty) is uploaded
// last, so a reader that waits for it sees the rest (a manifest, a
// config.json). Each object appears whole; the set is not atomic.
func UploadDir(ctx context.Context, dir, s string, last string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			if filepath.ToSlash(rel) != last {
				files = append(files, rel)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if last != "" {
		files = append(files, last)
	}
	for _, rel := range files {
		if _, err := Upload(ctx, filepath.Join(dir, rel), Join(s, strings.Split(filepath.ToSlash(rel), "/")...)); err != nil {
			return err
		}
	}
	return nil
}
