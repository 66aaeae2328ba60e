package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/distill-ml/distill/internal/atomicfile"
	"github.com/distill-ml/distill/internal/lock"
)

// Dir is a directory: a local one, or a key prefix in a bucket (the keys
// PREFIX/NAME). Names given to its methods are relative, slash-separated.
type Dir struct {
	loc Loc
	b   *blob.Bucket // nil for a local directory
}

// OpenDir returns the directory at location s. A remote one opens (or
// reuses) its bucket; nothing is created.
func OpenDir(ctx context.Context, s string) (*Dir, error) {
	l, err := Parse(s)
	if err != nil {
		return nil, err
	}
	return DirAt(ctx, l)
}

// DirAt is OpenDir for a parsed location.
func DirAt(ctx context.Context, l Loc) (*Dir, error) {
	d := &Dir{loc: l}
	if l.Remote() {
		b, err := bucket(ctx, l)
		if err != nil {
			return nil, err
		}
		d.b = b
	}
	return d, nil
}

// String returns the directory's location.
func (d *Dir) String() string { return d.loc.String() }

// Remote reports whether the directory is in a bucket.
func (d *Dir) Remote() bool { return d.b != nil }

// Path returns the location of name in the directory.
func (d *Dir) Path(name string) string { return d.loc.Join(name).String() }

// Sub returns the subdirectory name.
func (d *Dir) Sub(name string) *Dir { return &Dir{loc: d.loc.Join(name), b: d.b} }

func (d *Dir) key(name string) string { return d.loc.Join(name).Key }

// Entry is a file or subdirectory of a Dir.
type Entry struct {
	Name    string
	Size    int64
	IsDir   bool
	ModTime time.Time
}

// List returns the files and subdirectories directly in the directory,
// sorted by name. A local directory that does not exist, or a prefix with
// no keys, lists as empty.
func (d *Dir) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	if d.b == nil {
		des, err := os.ReadDir(d.loc.Key)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, e := range des {
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, Entry{Name: e.Name(), Size: info.Size(), IsDir: e.IsDir(), ModTime: info.ModTime()})
		}
		return out, nil
	}
	prefix := ""
	if d.loc.Key != "" {
		prefix = d.loc.Key + "/"
	}
	it := d.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, describe(d.String(), err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), "/")
		if name == "" {
			continue
		}
		out = append(out, Entry{Name: name, Size: obj.Size, IsDir: obj.IsDir, ModTime: obj.ModTime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stat returns the entry of the file name; a missing file is an error
// wrapping fs.ErrNotExist.
func (d *Dir) Stat(ctx context.Context, name string) (Entry, error) {
	if d.b == nil {
		st, err := os.Stat(d.Path(name))
		if err != nil {
			return Entry{}, err
		}
		return Entry{Name: name, Size: st.Size(), IsDir: st.IsDir(), ModTime: st.ModTime()}, nil
	}
	a, err := d.b.Attributes(ctx, d.key(name))
	if err != nil {
		return Entry{}, d.missing(ctx, name, err)
	}
	return Entry{Name: name, Size: a.Size, ModTime: a.ModTime}, nil
}

// Open opens the file name for reading.
func (d *Dir) Open(ctx context.Context, name string) (*File, error) {
	if d.b == nil {
		f, err := os.Open(d.Path(name))
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if st.IsDir() {
			f.Close()
			return nil, fmt.Errorf("%s is a directory", d.Path(name))
		}
		return &File{loc: d.Path(name), size: st.Size(), f: f}, nil
	}
	a, err := d.b.Attributes(ctx, d.key(name))
	if err != nil {
		return nil, d.missing(ctx, name, err)
	}
	return &File{loc: d.Path(name), size: a.Size, ctx: ctx, b: d.b, key: d.key(name)}, nil
}

// ReadFile reads the whole file name, refusing one larger than max bytes
// (max <= 0: no limit).
func (d *Dir) ReadFile(ctx context.Context, name string, max int64) ([]byte, error) {
	f, err := d.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if max > 0 && f.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", f.Name(), f.Size(), max)
	}
	data := make([]byte, f.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return data, nil
}

// Create starts writing the file name, which replaces any file of that
// name on Commit. A local directory must exist (MkdirAll).
func (d *Dir) Create(ctx context.Context, name string) (*Writer, error) {
	if d.b == nil {
		return newLocalWriter(d.Path(name), false)
	}
	return newRemoteWriter(ctx, d.loc.Join(name), false)
}

// CreateNew is Create for a file that must not exist: Commit fails with
// an error wrapping ErrExist if it does by then (link(2) locally,
// If-None-Match: * on S3), whoever else is writing it. An object under
// 16 MiB (the transfer manager's multipart threshold; a manifest is
// kilobytes) goes up in one PUT, where every S3-compatible server honours
// the condition; some ignore it on CompleteMultipartUpload.
func (d *Dir) CreateNew(ctx context.Context, name string) (*Writer, error) {
	if d.b == nil {
		return newLocalWriter(d.Path(name), true)
	}
	return newRemoteWriter(ctx, d.loc.Join(name), true)
}

// WriteFile writes the file name whole (create-only if exclusive).
func (d *Dir) WriteFile(ctx context.Context, name string, data []byte, exclusive bool) (Written, error) {
	var w *Writer
	var err error
	if exclusive {
		w, err = d.CreateNew(ctx, name)
	} else {
		w, err = d.Create(ctx, name)
	}
	if err != nil {
		return Written{}, err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return Written{}, err
	}
	return w.Commit()
}

// Remove removes the file name; a missing file is not an error.
func (d *Dir) Remove(ctx context.Context, name string) error {
	if d.b == nil {
		err := os.Remove(d.Path(name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	err := d.b.Delete(ctx, d.key(name))
	if err != nil && !errors.Is(describe("", err), fs.ErrNotExist) {
		return describe(d.Path(name), err)
	}
	return nil
}

// MkdirAll creates a local directory and its parents and returns the
// directories it created, deepest first (atomicfile.MkdirAll); a remote
// prefix needs no creating.
func (d *Dir) MkdirAll() ([]string, error) {
	if d.b != nil {
		return nil, nil
	}
	return atomicfile.MkdirAll(d.loc.Key)
}

// RemoveEmptyDirs removes the directories MkdirAll returned, if empty.
func (d *Dir) RemoveEmptyDirs(made []string) {
	if d.b == nil {
		atomicfile.RemoveEmptyDirs(made)
	}
}

// Lock takes the advisory lock of a local directory (package
// internal/lock; an error wrapping lock.ErrLocked while another process
// holds it) until the returned function is called. A remote directory has
// no lock: its writers rely on create-only commits instead.
func (d *Dir) Lock() (func() error, error) {
	if d.b != nil {
		return func() error { return nil }, nil
	}
	return lock.Dir(d.loc.Key)
}

// Exists reports whether the directory has any entry (a local directory
// that exists with entries, or a prefix with keys).
func (d *Dir) Exists(ctx context.Context) (bool, error) {
	es, err := d.List(ctx)
	return len(es) > 0, err
}

// Abs returns the location with a local path made absolute.
func (d *Dir) Abs() string {
	if d.b == nil {
		if abs, err := filepath.Abs(d.loc.Key); err == nil {
			return abs
		}
	}
	return d.String()
}

// missing describes the error of a HEAD of name: a 404 there does not say
// whether the key or the whole bucket is missing, so on not-found it asks
// the bucket.
func (d *Dir) missing(ctx context.Context, name string, err error) error {
	err = describe(d.Path(name), err)
	if errors.Is(err, fs.ErrNotExist) {
		if ok, berr := d.b.IsAccessible(ctx); berr == nil && !ok {
			return fmt.Errorf("%s: bucket %q does not exist%s; create it or fix the location", d.Path(name), d.loc.Bucket, endpointNote())
		}
	}
	return err
}

// MustDir is OpenDir for a local directory (which cannot fail), for tests
// and callers holding a path.
func MustDir(path string) *Dir { return &Dir{loc: Loc{Key: path}} }
