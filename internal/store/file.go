package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"gocloud.dev/blob"
)

// ReadAhead is the smallest range a remote File fetches for a ReadAt
// that misses its buffer: Parquet and IPC readers make many small reads
// (footers, page headers, column chunks) close together, and one range
// request of ReadAhead serves a run of them.
const ReadAhead = 4 << 20

// File is a file opened for reading: an io.ReaderAt (as the Parquet and
// Arrow IPC readers need), an io.ReadSeeker and its Size. A remote File
// answers ReadAt from a buffer of the last range fetched, fetching
// max(len(p), ReadAhead) bytes from the offset on a miss, and Read from
// one streaming request from the current offset. It is safe for
// concurrent ReadAt calls.
type File struct {
	loc  string
	size int64

	f *os.File // local

	ctx context.Context // remote
	b   *blob.Bucket
	key string

	mu     sync.Mutex
	buf    []byte
	bufOff int64

	pos    int64
	stream *blob.Reader
	// Fetched counts the bytes fetched from a remote object, for tests
	// and benchmarks.
	Fetched int64
}

// Name returns the location the file was opened at.
func (f *File) Name() string { return f.loc }

// Size returns the size of the file in bytes.
func (f *File) Size() int64 { return f.size }

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.f != nil {
		return f.f.ReadAt(p, off)
	}
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", f.loc)
	}
	if off >= f.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), f.size-off))
	f.mu.Lock()
	defer f.mu.Unlock()
	// What the buffer holds of the range is copied; only the rest is
	// fetched, so reads that go forward fetch each byte once.
	done := 0
	if off >= f.bufOff && off < f.bufOff+int64(len(f.buf)) {
		done = copy(p[:want], f.buf[off-f.bufOff:])
	}
	if done == want {
		return fillEOF(done, len(p))
	}
	rest, roff := p[done:want], off+int64(done)
	if len(rest) >= ReadAhead {
		n, err := f.fetch(rest, roff)
		if err != nil {
			return done + n, err
		}
		return fillEOF(want, len(p))
	}
	n := min(int64(ReadAhead), f.size-roff)
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n)
	}
	f.buf = f.buf[:n]
	if _, err := f.fetch(f.buf, roff); err != nil {
		f.buf = f.buf[:0]
		return done, err
	}
	f.bufOff = roff
	copy(rest, f.buf)
	return fillEOF(want, len(p))
}

func fillEOF(n, want int) (int, error) {
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// fetch reads exactly len(p) bytes at off with one range request.
func (f *File) fetch(p []byte, off int64) (int, error) {
	r, err := f.b.NewRangeReader(f.ctx, f.key, off, int64(len(p)), nil)
	if err != nil {
		return 0, describe(f.loc, err)
	}
	defer r.Close()
	n, err := io.ReadFull(r, p)
	f.Fetched += int64(n)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return n, fmt.Errorf("%s: object ended after %d of %d bytes at offset %d: it changed or was truncated while being read", f.loc, n, len(p), off)
		}
		return n, describe(f.loc, err)
	}
	return n, nil
}

// Read implements io.Reader, from the current offset.
func (f *File) Read(p []byte) (int, error) {
	if f.f != nil {
		return f.f.Read(p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos >= f.size {
		return 0, io.EOF
	}
	if f.stream == nil {
		r, err := f.b.NewRangeReader(f.ctx, f.key, f.pos, -1, nil)
		if err != nil {
			return 0, describe(f.loc, err)
		}
		f.stream = r
	}
	n, err := f.stream.Read(p)
	f.pos += int64(n)
	f.Fetched += int64(n)
	if err == io.EOF && f.pos < f.size {
		return n, fmt.Errorf("%s: object ended after %d of %d bytes: it changed or was truncated while being read", f.loc, f.pos, f.size)
	}
	if err != nil && err != io.EOF {
		return n, describe(f.loc, err)
	}
	return n, err
}

// Seek implements io.Seeker.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	if f.f != nil {
		return f.f.Seek(offset, whence)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = f.pos + offset
	case io.SeekEnd:
		abs = f.size + offset
	default:
		return 0, errors.New("store: bad whence")
	}
	if abs < 0 {
		return 0, fmt.Errorf("%s: seek to negative offset", f.loc)
	}
	if abs != f.pos && f.stream != nil {
		f.stream.Close()
		f.stream = nil
	}
	f.pos = abs
	return abs, nil
}

// Close releases the file.
func (f *File) Close() error {
	if f.f != nil {
		return f.f.Close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stream != nil {
		f.stream.Close()
		f.stream = nil
	}
	f.buf = nil
	return nil
}

// Local returns the *os.File of a local File, or nil.
func (f *File) Local() *os.File { return f.f }
