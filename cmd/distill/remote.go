package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/internal/atomicfile"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
)

// writeOutput writes data to the output file loc whole: a local file
// atomically (its directory created), a remote object (s3://, gs://)
// through one upload that appears only when complete.
func writeOutput(ctx context.Context, loc string, data []byte) error {
	if !store.IsRemote(loc) {
		return atomicfile.WriteFileAll(loc, data, 0o644)
	}
	w, err := store.Create(ctx, loc)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	_, err = w.Commit()
	return err
}

// fetchModel returns a local path for the model at loc (a checkpoint, an
// ONNX file, an export folder, a Hugging Face directory): loc itself when
// local, else a download (train.FetchCheckpoint) that cleanup removes.
// rename maps a path below the download back to the location it came
// from (for a checkpoint of distill train, its current save), so that
// what is recorded names the location, not the download.
func fetchModel(ctx context.Context, flag, loc string) (path string, rename func(string) string, cleanup func(), err error) {
	if !store.IsRemote(loc) {
		return loc, func(p string) string { return p }, func() {}, nil
	}
	path, cleanup, err = train.FetchCheckpoint(ctx, loc)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%s: %w", flag, err)
	}
	src := loc
	if save, err := train.CurrentSave(ctx, loc); err == nil {
		src = save
	}
	rename = func(p string) string {
		switch rel, err := filepath.Rel(path, p); {
		case p == path:
			return loc
		case err == nil && !strings.HasPrefix(rel, ".."):
			return store.Join(src, strings.Split(filepath.ToSlash(rel), "/")...)
		}
		return p
	}
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		// A file: the download keeps its name.
		rename = func(p string) string {
			if p == path {
				return loc
			}
			return p
		}
	}
	return path, rename, cleanup, nil
}

// relocateModel names in res the model's location instead of its
// download (see fetchModel).
func relocateModel(res *eval.Result, loc string, rename func(string) string) {
	if res == nil {
		return
	}
	res.Model.Path = loc
	res.Model.File = rename(res.Model.File)
}

// reportFile reports whether a file of a run directory is one the report
// reads: eval outputs and checkpoint records (*.json), samples (*.jsonl).
func reportFile(name string) bool {
	return strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".jsonl")
}

// fetchRun returns a local directory for the run directory runDir: runDir
// itself when local; for a remote one a download of what the report
// reads (reportFile: no weights, no models), skipping dot prefixes and
// the report location skip. A remote checkpoint of distill train (a
// pointer, train.PointerFile) becomes a directory holding the records
// (config.json, metrics.jsonl, training.json) of its current save, as a
// local checkpoint holds them. cleanup removes the download.
func fetchRun(ctx context.Context, runDir, skip string) (string, func(), error) {
	if !store.IsRemote(runDir) {
		return runDir, func() {}, nil
	}
	root, err := store.OpenDir(ctx, runDir)
	if err != nil {
		return "", nil, err
	}
	tmp, err := os.MkdirTemp("", "distill-run-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	n := 0
	get := func(d *store.Dir, name, local string) error {
		data, err := d.ReadFile(ctx, name, 0)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(local, 0o755); err != nil {
			return err
		}
		n++
		return os.WriteFile(filepath.Join(local, name), data, 0o644)
	}
	var walk func(d *store.Dir, local string) error
	walk = func(d *store.Dir, local string) error {
		if skip != "" && d.String() == store.MustParse(skip).String() {
			return nil
		}
		es, err := d.List(ctx)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Name == train.PointerFile && !e.IsDir {
				save, err := train.CurrentSave(ctx, d.String())
				if err != nil {
					return err
				}
				sd, err := store.OpenDir(ctx, save)
				if err != nil {
					return err
				}
				for _, name := range []string{train.ConfigFile, train.MetricsFile, train.TrainingFile} {
					if err := get(sd, name, local); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return err
					}
				}
				return nil
			}
		}
		for _, e := range es {
			switch {
			case strings.HasPrefix(e.Name, "."):
			case e.IsDir:
				if err := walk(d.Sub(e.Name), filepath.Join(local, e.Name)); err != nil {
					return err
				}
			case reportFile(e.Name):
				if err := get(d, e.Name, local); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, tmp); err != nil {
		cleanup()
		return "", nil, err
	}
	if n == 0 {
		cleanup()
		return "", nil, fmt.Errorf("%s: no checkpoints, eval outputs or samples below this location: %w", runDir, fs.ErrNotExist)
	}
	return tmp, cleanup, nil
}
