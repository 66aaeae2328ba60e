package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"

	"gocloud.dev/blob"

	"github.com/distill-ml/distill/internal/atomicfile"
)

// PartSize is the size of the parts of a streamed multipart upload, and
// Concurrency how many are in flight: a remote Writer holds at most
// about PartSize×(Concurrency+1) bytes, whatever the object's size.
const (
	PartSize    = 16 << 20
	Concurrency = 4
)

// Written is what a Writer committed.
type Written struct {
	Size   int64
	SHA256 string // hex
}

// AfterUpload, when set (by tests), is called after every remote object a
// Writer commits, with its location, bucket key and what the Writer sent;
// an error it returns fails the Commit.
var AfterUpload func(loc string, b *blob.Bucket, key string, w Written) error

// Writer writes a file that appears whole at its location on Commit and
// not at all on Abort (or a crash): locally a temporary file renamed (or,
// create-only, linked) into place; remotely a streamed upload, multipart
// beyond PartSize, that the service completes on Commit. Not safe for
// concurrent use.
type Writer struct {
	loc       string
	exclusive bool
	h         hash.Hash
	n         int64
	done      bool

	tmp *atomicfile.File // local
	bw  *bufio.Writer

	b      *blob.Bucket // remote
	key    string
	w      *blob.Writer
	cancel context.CancelFunc
}

func newLocalWriter(path string, exclusive bool) (*Writer, error) {
	if exclusive {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s: %w", path, ErrExist)
		}
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	return &Writer{loc: path, exclusive: exclusive, h: sha256.New(), tmp: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

func newRemoteWriter(ctx context.Context, l Loc, exclusive bool) (*Writer, error) {
	b, err := bucket(ctx, l)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	bw, err := b.NewWriter(wctx, l.Key, &blob.WriterOptions{
		BufferSize: PartSize, MaxConcurrency: Concurrency, IfNotExist: exclusive,
		ContentType: "application/octet-stream", DisableContentTypeDetection: true,
	})
	if err != nil {
		cancel()
		return nil, describe(l.String(), err)
	}
	return &Writer{loc: l.String(), exclusive: exclusive, h: sha256.New(), b: b, key: l.Key, w: bw, cancel: cancel}, nil
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("store: write after Commit or Abort")
	}
	w.h.Write(p)
	w.n += int64(len(p))
	if w.tmp != nil {
		return w.bw.Write(p)
	}
	n, err := w.w.Write(p)
	if err != nil {
		return n, describe(w.loc, err)
	}
	return n, nil
}

// Size returns the bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Name returns the location being written.
func (w *Writer) Name() string { return w.loc }

// Commit puts the file in place and returns its size and sha256. A
// create-only Writer (CreateNew) whose target appeared meanwhile fails
// with an error wrapping ErrExist and leaves the target as it was. On any
// error nothing is left at the location (but a remote object whose stored
// size is wrong is deleted, unless it was create-only).
func (w *Writer) Commit() (Written, error) {
	if w.done {
		return Written{}, errors.New("store: Commit after Commit or Abort")
	}
	w.done = true
	out := Written{Size: w.n, SHA256: hex.EncodeToString(w.h.Sum(nil))}
	if w.tmp != nil {
		if err := w.bw.Flush(); err != nil {
			w.tmp.Abort()
			return out, err
		}
		var err error
		if w.exclusive {
			err = w.tmp.CommitNew()
		} else {
			err = w.tmp.Commit()
		}
		if errors.Is(err, fs.ErrExist) {
			return out, fmt.Errorf("%s: %w", w.loc, ErrExist)
		}
		return out, err
	}
	defer w.cancel()
	if err := w.w.Close(); err != nil {
		return out, describe(w.loc, err)
	}
	attrs, err := w.b.Attributes(context.Background(), w.key)
	if err != nil {
		return out, describe(w.loc, err)
	}
	if attrs.Size != w.n {
		if !w.exclusive {
			w.b.Delete(context.Background(), w.key)
		}
		return out, fmt.Errorf("%s: the server stored %d bytes of the %d uploaded; an S3-compatible server that stores aws-chunked framing needs AWS_REQUEST_CHECKSUM_CALCULATION=when_required", w.loc, attrs.Size, w.n)
	}
	if AfterUpload != nil {
		if err := AfterUpload(w.loc, w.b, w.key, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Abort abandons the file: nothing appears at its location. It does
// nothing after Commit or Abort.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.tmp != nil {
		return w.tmp.Abort()
	}
	w.cancel()
	w.w.Close() // cancelled: the upload is aborted, not completed
	return nil
}
