package train

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/s3test"
)

// fetchFiles reads the files of the checkpoint at loc through
// FetchCheckpoint (the current save of a remote one).
func fetchFiles(t *testing.T, loc string) map[string][]byte {
	t.Helper()
	dir, cleanup, err := FetchCheckpoint(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	return readDir(t, dir)
}

// saves lists the save-* prefixes below the remote checkpoint key prefix.
func saves(t *testing.T, s *s3test.Server, prefix string) []string {
	t.Helper()
	var out []string
	for _, k := range s.Keys(t, prefix+"/") {
		rest := strings.TrimPrefix(k, prefix+"/")
		if name, _, ok := strings.Cut(rest, "/"); ok && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// TestRemoteCheckpointResume trains to s3:// (stopped after epoch 2,
// resumed) and checks the result is byte-identical to an uninterrupted
// local run, that the pointer names the last save and that only it and
// the one before it are kept.
func TestRemoteCheckpointResume(t *testing.T) {
	s := s3test.Start(t)
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), nil)
	cfg := Config{Hidden: []int{8}, LayerNorm: true}
	base := Options{Epochs: 3, BatchSize: 32, Alpha: 0.5, Temperature: 2, Seed: 3, Threads: 1,
		Features: []FeaturePair{{Teacher: "h", Layer: 1}}}
	local := trainFiles(t, data, cfg, func() Options { o := base; o.Out = filepath.Join(tmp, "local.ckpt"); return o }())

	o := base
	o.Out = s3test.Prefix("runs/s.ckpt")
	trainStopped(t, data, cfg, o, 2)
	if !Exists(o.Out) {
		t.Fatal("Exists: false after two saves")
	}
	if c, err := Load(o.Out); err != nil || c.Info.Epoch != 2 {
		t.Fatalf("Load after the stop: %v", err)
	}
	if _, err := Train(context.Background(), cfg, data, &o); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Errorf("a fresh run into the remote checkpoint: %v", err)
	}
	o.Resume = true
	if _, err := Train(context.Background(), cfg, data, &o); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, local, fetchFiles(t, o.Out))
	got := saves(t, s, "runs/s.ckpt")
	if len(got) != 2 || !strings.HasPrefix(got[0], "save-000002-") || !strings.HasPrefix(got[1], "save-000003-") {
		t.Errorf("saves kept: %v, want the epoch-2 and epoch-3 ones", got)
	}
	if ptr := string(s.Object(t, "runs/s.ckpt/"+PointerFile)); !strings.Contains(ptr, got[len(got)-1]) {
		t.Errorf("%s does not name the last save:\n%s", PointerFile, ptr)
	}
}

// TestRemoteCheckpointFails fails a save at each of its uploads and at
// the pointer: the error is returned, the previous save stays the one
// Load reads, byte for byte, and the next save removes the partial one.
func TestRemoteCheckpointFails(t *testing.T) {
	s := s3test.Start(t)
	files := testCheckpoint(t)
	c, err := LoadFS(checkpointFS(files, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { checkpointFault = func(string) error { return nil } }()
	for _, step := range []string{ModelFile, MetricsFile, StateFile, ConfigFile, "pointer"} {
		t.Run(step, func(t *testing.T) {
			loc := s3test.Prefix("fail/" + step)
			checkpointFault = func(string) error { return nil }
			if err := WriteCheckpoint(loc, c); err != nil {
				t.Fatal(err)
			}
			checkpointFault = faultAt(step)
			next := *c
			next.Info.Epoch = 2
			if err := WriteCheckpoint(loc, &next); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("second write: %v, want ENOSPC", err)
			}
			sameFiles(t, files, fetchFiles(t, loc))
			if l, err := Load(loc); err != nil || l.Info.Epoch != c.Info.Epoch {
				t.Fatalf("Load after the failed save: %v", err)
			}
			checkpointFault = func(string) error { return nil }
			next.Info.Epoch = 3
			if err := WriteCheckpoint(loc, &next); err != nil {
				t.Fatal(err)
			}
			got := saves(t, s, "fail/"+step)
			if len(got) != 2 || !strings.HasPrefix(got[0], "save-000001-") || !strings.HasPrefix(got[1], "save-000003-") {
				t.Errorf("saves after the next one: %v, want epoch 1's and epoch 3's", got)
			}
		})
	}
}

// TestRemoteCheckpointErrors: a missing remote checkpoint wraps
// fs.ErrNotExist and names the pointer; a denied bucket says access
// denied; a prefix of other objects is not trained into.
func TestRemoteCheckpointErrors(t *testing.T) {
	s := s3test.Start(t)
	if _, err := Load(s3test.Prefix("nothing")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), PointerFile) {
		t.Errorf("missing: %v", err)
	}
	if _, err := LoadLMCheckpoint("s3://" + s3test.DeniedBucket + "/x"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("denied: %v", err)
	}
	if _, _, err := FetchCheckpoint(context.Background(), s3test.Prefix("nothing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FetchCheckpoint of nothing: %v", err)
	}
	s.Put(t, "other/notes.txt", []byte("mine"))
	data := smallCache(t, filepath.Join(t.TempDir(), "train"), nil)
	o := Options{Epochs: 1, Threads: 1, Out: s3test.Prefix("other")}
	if _, err := Train(context.Background(), Config{Hidden: []int{4}}, data, &o); err == nil || !strings.Contains(err.Error(), "holds other objects") {
		t.Errorf("train into a prefix of other objects: %v", err)
	}
	if keys := s.Keys(t, "other/"); len(keys) != 1 {
		t.Errorf("train wrote into it: %v", keys)
	}
}

// TestRemoteLMCheckpoint trains a transformer into s3:// and checks the
// checkpoint equals a local run's and loads through LoadLMCheckpoint.
func TestRemoteLMCheckpoint(t *testing.T) {
	s3test.Start(t)
	const T, V = 8, 16
	data := writeLMCache(t, 32, T, V, formats.Config{}, 1)
	cfg := TransformerConfig{Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 16}
	o := Options{Epochs: 2, BatchSize: 16, LR: 0.01, Alpha: 0.5, Temperature: 2, Threads: 1, Out: filepath.Join(t.TempDir(), "student")}
	local := trainLMFiles(t, cfg, data, o)
	o.Out = s3test.Prefix("lm/student")
	if _, err := TrainLM(context.Background(), cfg, data, &o, nil); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, local, fetchFiles(t, o.Out))
	c, err := LoadLMCheckpoint(o.Out)
	if err != nil || c.Info.Epoch != 2 {
		t.Fatalf("LoadLMCheckpoint: %v", err)
	}
}

// faultAt returns a checkpointFault that fails step with ENOSPC.
func faultAt(step string) func(string) error {
	return func(s string) error {
		if s == step {
			return syscall.ENOSPC
		}
		return nil
	}
}
