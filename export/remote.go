package export

import (
	"context"
	"fmt"
	"slices"

	"github.com/distill-ml/distill/internal/store"
)

// writeRemoteFile writes data to the remote location loc; the object
// appears whole on success and not at all on error (store.Writer).
func writeRemoteFile(ctx context.Context, loc string, data []byte) error {
	w, err := store.Create(ctx, loc)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("export: %w", err)
	}
	if _, err := w.Commit(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// writeRemoteDir is writeDir for a remote location (s3://, gs://): there
// is no rename, so each file is uploaded as an object that appears whole,
// model.onnx last (a reader that finds model.onnx finds the files it
// needs beside it), and then the objects of an earlier export that the
// new one does not have are removed. An earlier export at loc is replaced
// file by file: while the upload runs, a reader may see old and new
// files side by side (config.json of one, model.onnx of the other); write
// each export to a new location if something reads it meanwhile. A
// prefix holding objects but no export (no model.onnx, or a checkpoint)
// is refused before anything is written.
func writeRemoteDir(ctx context.Context, loc string, files []dirEntry) error {
	d, err := store.OpenDir(ctx, loc)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	old, err := d.List(ctx)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	names := make([]string, 0, len(old))
	for _, e := range old {
		names = append(names, e.Name)
	}
	if len(old) > 0 && (!slices.Contains(names, LMModelFile) || slices.Contains(names, "training.json") || slices.Contains(names, "checkpoint.json")) {
		return fmt.Errorf("export: %s holds objects and no export (%s); choose another --out", loc, LMModelFile)
	}
	ordered := slices.Clone(files)
	slices.SortStableFunc(ordered, func(a, b dirEntry) int {
		switch {
		case a.name == LMModelFile && b.name != LMModelFile:
			return 1
		case b.name == LMModelFile && a.name != LMModelFile:
			return -1
		}
		return 0
	})
	for _, f := range ordered {
		if _, err := d.WriteFile(ctx, f.name, f.data, false); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	for _, e := range old {
		if !e.IsDir && !slices.ContainsFunc(files, func(f dirEntry) bool { return f.name == e.Name }) {
			if err := d.Remove(ctx, e.Name); err != nil {
				return fmt.Errorf("export: remove %s of the earlier export: %w", e.Name, err)
			}
		}
	}
	return nil
}
