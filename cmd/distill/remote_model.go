package main

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/internal/store"
)

// localModel returns a local path holding the model at location loc, for
// the code that tells models apart and opens them by path (distill eval's
// --model: an ONNX file, a checkpoint or an exported folder): loc itself
// when it is local; else a copy in a new temporary directory, of the
// object (store.Fetch) or of every object below the prefix
// (store.FetchDir), which cleanup removes.
func localModel(ctx context.Context, loc string) (path string, cleanup func(), err error) {
	if !store.IsRemote(loc) {
		return loc, func() {}, nil
	}
	dir, err := eval.IsDirLocation(loc)
	if err != nil {
		return "", nil, err
	}
	if dir {
		return store.FetchDir(ctx, loc)
	}
	return store.Fetch(ctx, loc)
}

// relocate rewrites the paths of info that lie in local, the copy
// localModel made of loc, as locations below loc: a result records the
// model where the user keeps it, not where it was fetched to.
func relocate(info *eval.ModelInfo, local, loc string) {
	if local == loc {
		return
	}
	move := func(p string) string {
		rel, err := filepath.Rel(local, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return p
		}
		if rel == "." {
			return loc
		}
		return store.Join(loc, strings.Split(filepath.ToSlash(rel), "/")...)
	}
	info.Path, info.File = move(info.Path), move(info.File)
}
