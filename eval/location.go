package eval

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/distill-ml/distill/internal/store"
)

// IsDirLocation reports whether the location path (a plain path, file://,
// s3:// or gs://; package internal/store) is a directory, as a cache or a
// checkpoint is, rather than a file. A local path is stat'ed (its error
// returned as os.Stat gives it); a remote location is a file if an object
// of that key exists, else a directory if keys exist below it, else an
// error wrapping fs.ErrNotExist that names it.
func IsDirLocation(path string) (bool, error) {
	if !store.IsRemote(path) {
		l, err := store.Parse(path)
		if err != nil {
			return false, err
		}
		st, err := os.Stat(l.Key)
		if err != nil {
			return false, err
		}
		return st.IsDir(), nil
	}
	ctx := context.Background()
	_, err := store.Stat(ctx, path)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	dir, derr := store.IsDir(ctx, path)
	if derr != nil {
		return false, derr
	}
	if !dir {
		return false, fmt.Errorf("%w: no object and no prefix with objects at %s; check the location", fs.ErrNotExist, path)
	}
	return true, nil
}
