package train

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/distill-ml/distill/internal/store"
)

// A checkpoint at a remote location (s3://BUCKET/PREFIX, gs://...) cannot
// be swapped in by renames: objects are replaced one at a time, so a
// reader between two uploads would see the new model.safetensors beside
// the old config.json. Each save therefore goes to a prefix of its own,
// and a small pointer object, written last, names the save that is
// current:
//
//	s3://bucket/runs/student.ckpt/
//	  checkpoint.json            CheckpointPointer: {"format": "distill-checkpoint-pointer",
//	                             "version": 1, "save": "save-000003-1f2e3d4c", "epoch": 3}
//	  save-000003-1f2e3d4c/      the files of the local layout (config.json, model.safetensors,
//	                             ... or training.json, ...), each uploaded as a stream
//	  save-000002-9a8b7c6d/      the save the pointer named before (kept for readers that
//	                             read the pointer just before it moved)
//
// The save name holds the epoch and 4 random bytes, so no two attempts
// (a retried or duplicated job) write the same objects. A save uploads
// its files, then replaces checkpoint.json (each object appears whole,
// store.Writer.Commit), then removes every other save-* prefix except the
// one the pointer named before. A crash or an error at any point before
// the pointer is replaced leaves the pointer naming the previous save,
// which is complete; the partial save is never read and the next save
// removes it. Load, LoadLMCheckpoint and FetchCheckpoint read the
// pointer, then only the files of the save it names (their sizes and
// sha256 are checked against config.json or training.json as locally).
//
// Memory stays bounded: the files are those WriteCheckpoint serializes
// (held once) and each is streamed to a store.Writer, which holds at
// most store.PartSize×(store.Concurrency+1) bytes; loading streams each
// file from a store.File.
//
// A remote checkpoint has no lock (object stores have none): two Trains
// into one remote --out each write their own saves, and the pointer names
// a complete save of one of them, never a mix. Run one writer per --out.
const (
	PointerFile   = "checkpoint.json"
	pointerFormat = "distill-checkpoint-pointer"
	savePrefix    = "save-"
)

// CheckpointPointer is checkpoint.json of a remote checkpoint.
type CheckpointPointer struct {
	Format  string `json:"format"`  // "distill-checkpoint-pointer"
	Version int    `json:"version"` // 1
	Save    string `json:"save"`    // the current save, a prefix below the checkpoint
	Epoch   int    `json:"epoch"`   // the epochs that save completed
}

// saveName returns a new save name for epoch: unique per attempt.
func saveName(epoch int) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; the clock
		// still tells attempts apart.
		return fmt.Sprintf("%s%06d-%x", savePrefix, epoch, time.Now().UnixNano())
	}
	return fmt.Sprintf("%s%06d-%s", savePrefix, epoch, hex.EncodeToString(b[:]))
}

// writeRemote writes files as a new save of the remote checkpoint loc and
// moves the pointer to it (see the layout above).
func writeRemote(ctx context.Context, loc string, files []dirFile, epoch int) error {
	d, err := store.OpenDir(ctx, loc)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	prev, err := readPointer(ctx, d)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if prev == nil {
		if err := remoteReplaceable(ctx, d); err != nil {
			return err
		}
	}
	name := saveName(epoch)
	save := d.Sub(name)
	for _, f := range files {
		if err := checkpointFault(f.name); err != nil {
			return fmt.Errorf("train: checkpoint: write %s: %w", save.Path(f.name), err)
		}
		if _, err := save.WriteFile(ctx, f.name, f.data, false); err != nil {
			return fmt.Errorf("train: checkpoint: %w", err)
		}
	}
	if err := checkpointFault("pointer"); err != nil {
		return fmt.Errorf("train: checkpoint: write %s: %w", d.Path(PointerFile), err)
	}
	ptr, err := json.MarshalIndent(CheckpointPointer{Format: pointerFormat, Version: 1, Save: name, Epoch: epoch}, "", "  ")
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if _, err := d.WriteFile(ctx, PointerFile, append(ptr, '\n'), false); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	keep := map[string]bool{name: true}
	if prev != nil {
		keep[prev.Save] = true
	}
	return removeSaves(ctx, d, keep)
}

// removeSaves removes the save-* prefixes of d not in keep: saves the
// pointer no longer names and partial saves of failed attempts.
func removeSaves(ctx context.Context, d *store.Dir, keep map[string]bool) error {
	es, err := d.List(ctx)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	for _, e := range es {
		if !e.IsDir || !strings.HasPrefix(e.Name, savePrefix) || keep[e.Name] {
			continue
		}
		sub := d.Sub(e.Name)
		files, err := sub.List(ctx)
		if err != nil {
			return fmt.Errorf("train: checkpoint: %w", err)
		}
		for _, f := range files {
			if f.IsDir {
				continue // a save is flat; nothing distill wrote
			}
			if err := sub.Remove(ctx, f.Name); err != nil {
				return fmt.Errorf("train: checkpoint: remove an old save: %w", err)
			}
		}
	}
	return nil
}

// readPointer reads checkpoint.json of the remote checkpoint d; a missing
// one is an error wrapping fs.ErrNotExist.
func readPointer(ctx context.Context, d *store.Dir) (*CheckpointPointer, error) {
	data, err := d.ReadFile(ctx, PointerFile, maxConfigBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("train: checkpoint: %s holds no checkpoint (no %s; %w): give the --out of a distill train run", d, PointerFile, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("train: checkpoint: %w", err)
	}
	var p CheckpointPointer
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, d.Path(PointerFile), err)
	}
	if p.Format != pointerFormat || p.Version != 1 {
		return nil, fmt.Errorf("%w: %s: format %q version %d, this build reads %q version 1", ErrCheckpoint, d.Path(PointerFile), p.Format, p.Version, pointerFormat)
	}
	if !strings.HasPrefix(p.Save, savePrefix) || strings.ContainsAny(p.Save, "/\\") {
		return nil, fmt.Errorf("%w: %s: save %q is not a save of this checkpoint", ErrCheckpoint, d.Path(PointerFile), p.Save)
	}
	return &p, nil
}

// remoteReplaceable fails if the remote prefix d holds objects but no
// checkpoint, so that a save never mixes into unrelated files.
func remoteReplaceable(ctx context.Context, d *store.Dir) error {
	es, err := d.List(ctx)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	for _, e := range es {
		if e.Name != PointerFile && !(e.IsDir && strings.HasPrefix(e.Name, savePrefix)) {
			return fmt.Errorf("train: checkpoint: %s holds other objects (%s) and no checkpoint; choose another --out", d, e.Name)
		}
	}
	return nil
}

// currentSave returns the directory of the save the pointer of the remote
// checkpoint loc names.
func currentSave(ctx context.Context, loc string) (*store.Dir, error) {
	d, err := store.OpenDir(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("train: checkpoint: %w", err)
	}
	p, err := readPointer(ctx, d)
	if err != nil {
		return nil, err
	}
	return d.Sub(p.Save), nil
}

// CurrentSave returns the location of the save the pointer of the remote
// checkpoint loc names (see PointerFile); a location without a pointer is
// an error wrapping fs.ErrNotExist.
func CurrentSave(ctx context.Context, loc string) (string, error) {
	d, err := currentSave(ctx, loc)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// remoteExists reports whether the remote location loc holds a
// checkpoint (a pointer).
func remoteExists(ctx context.Context, loc string) (bool, error) {
	d, err := store.OpenDir(ctx, loc)
	if err != nil {
		return false, fmt.Errorf("train: checkpoint: %w", err)
	}
	_, err = d.Stat(ctx, PointerFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("train: checkpoint: %w", err)
	}
	return true, nil
}

// FetchCheckpoint returns a local directory holding the checkpoint, model
// folder or model file at loc, for code that opens it by path: loc itself
// if local; for a remote checkpoint of distill train (a pointer, see the
// layout above) the files of its current save, downloaded; for any other
// remote prefix every object below it (a Hugging Face directory, a
// distill export folder), and for a remote file that file
// (store.FetchDir, store.Fetch). cleanup removes the download. A missing
// remote location is an error wrapping fs.ErrNotExist.
func FetchCheckpoint(ctx context.Context, loc string) (path string, cleanup func(), err error) {
	if !store.IsRemote(loc) {
		return store.FetchDir(ctx, loc)
	}
	if ok, err := remoteExists(ctx, loc); err != nil {
		return "", nil, err
	} else if ok {
		save, err := currentSave(ctx, loc)
		if err != nil {
			return "", nil, err
		}
		return store.FetchDir(ctx, save.String())
	}
	if isDir, err := store.IsDir(ctx, loc); err != nil {
		return "", nil, err
	} else if isDir {
		return store.FetchDir(ctx, loc)
	}
	path, cleanup, err = store.Fetch(ctx, loc)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("%s: no checkpoint, model folder or file there (%w); check the location", loc, fs.ErrNotExist)
	}
	return path, cleanup, err
}

// storeFS is an fs.FS of the files of a remote directory, read as
// streams, for LoadFS and loadLM.
type storeFS struct {
	ctx context.Context
	d   *store.Dir
}

func (s storeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := s.d.Open(s.ctx, name)
	if err != nil {
		return nil, err
	}
	return storeFile{f}, nil
}

type storeFile struct{ f *store.File }

func (f storeFile) Read(p []byte) (int, error) { return f.f.Read(p) }
func (f storeFile) Close() error               { return f.f.Close() }
func (f storeFile) Stat() (fs.FileInfo, error) { return storeInfo{f.f}, nil }

type storeInfo struct{ f *store.File }

func (i storeInfo) Name() string       { return store.Base(i.f.Name()) }
func (i storeInfo) Size() int64        { return i.f.Size() }
func (i storeInfo) Mode() fs.FileMode  { return 0o444 }
func (i storeInfo) ModTime() time.Time { return time.Time{} }
func (i storeInfo) IsDir() bool        { return false }
func (i storeInfo) Sys() any           { return nil }

// loadRemote loads the current save of the remote checkpoint loc with
// load (LoadFS, loadLM), its files streamed; errors name the save.
func loadRemote[T any](loc string, load func(fs.FS) (T, error)) (T, error) {
	var zero T
	ctx := context.Background()
	save, err := currentSave(ctx, loc)
	if err != nil {
		return zero, err
	}
	c, err := load(storeFS{ctx, save})
	if err != nil {
		return zero, fmt.Errorf("%s: %w", save, err)
	}
	return c, nil
}

// claimRemote is claimOut for a remote o.Out: there is no lock to take
// (see the layout above); it checks the location and reports whether to
// resume its checkpoint. A prefix holding other objects and no checkpoint
// is refused before the first epoch, as locally.
func claimRemote(o *Options) (release func() error, resume bool, err error) {
	ctx := context.Background()
	if _, err := store.Parse(o.Out); err != nil {
		return nil, false, fmt.Errorf("train: --out: %w", err)
	}
	ok, err := remoteExists(ctx, o.Out)
	if err != nil {
		return nil, false, err
	}
	switch {
	case ok && !o.Resume:
		return nil, false, fmt.Errorf("train: %s already holds a checkpoint; continue it with resume (--resume) or choose another --out", o.Out)
	case !ok:
		d, err := store.OpenDir(ctx, o.Out)
		if err != nil {
			return nil, false, fmt.Errorf("train: checkpoint: %w", err)
		}
		if err := remoteReplaceable(ctx, d); err != nil {
			return nil, false, err
		}
	}
	return func() error { return nil }, ok, nil
}
