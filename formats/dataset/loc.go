package dataset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/distill-ml/distill/internal/store"
)

// Every file this package reads or writes is named by a location (package
// internal/store): a plain path, file://PATH, s3://BUCKET/KEY or
// gs://BUCKET/KEY. Readers get a *store.File: the Parquet and Arrow IPC
// readers use it as their io.ReaderAt (a remote object is read with range
// requests through its read-ahead buffer, never downloaded whole), the
// sequential ones (CSV, gzip idx, text, JSONL, hashing) stream it with
// Read. Writers get a *store.Writer, which makes the file appear whole on
// Commit and leaves nothing on Abort (a local temporary file renamed into
// place; a remote streamed multipart upload completed on Commit).

// openSized opens the file at location path for reading and returns its
// size. A local path must be a regular file.
func openSized(path string) (*store.File, int64, error) {
	f, err := store.Open(context.Background(), path)
	if err != nil {
		return nil, 0, err
	}
	if lf := f.Local(); lf != nil {
		st, err := lf.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("dataset: %s is not a regular file", path)
		}
	}
	return f, f.Size(), nil
}

// createFile starts writing the file at location path. A local folder
// must exist (an error naming it otherwise); a remote prefix needs none.
func createFile(ctx context.Context, path string) (*store.Writer, error) {
	d, err := store.OpenDir(ctx, store.Parent(path))
	if err != nil {
		return nil, fmt.Errorf("dataset: writing %s: %w", path, err)
	}
	w, err := d.Create(ctx, store.Base(path))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !d.Remote() {
			return nil, fmt.Errorf("dataset: writing %s: folder %s does not exist", path, d)
		}
		return nil, fmt.Errorf("dataset: writing %s: %w", path, err)
	}
	return w, nil
}
