package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/lock"
	"github.com/distill-ml/distill/internal/sharedtest"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// TestSafetensorsLayout checks the byte layout against the format's
// definition: an 8-byte little-endian header length, a JSON header padded
// with spaces to 8 bytes, then the little-endian data.
func TestSafetensorsLayout(t *testing.T) {
	a := &Param{Name: "fc1.weight", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}
	b := &Param{Name: "fc1.bias", Shape: []int{2}, Data: []float32{-1, 0.5}}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, []*Param{a, b}, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	n := binary.LittleEndian.Uint64(data)
	header := string(data[8 : 8+n])
	want := `{"__metadata__":{"format":"pt"},"fc1.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"fc1.bias":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}}`
	if strings.TrimRight(header, " ") != want || n%8 != 0 {
		t.Errorf("header (%d bytes) %q, want %q padded", n, header, want)
	}
	if got := len(data) - 8 - int(n); got != 32 {
		t.Errorf("%d data bytes, want 32", got)
	}
	if v := binary.LittleEndian.Uint32(data[8+n+24:]); v != 0xbf800000 { // -1.0
		t.Errorf("first bias value bits %#x, want 0xbf800000", v)
	}
	ts, meta, err := ReadSafetensors(data)
	if err != nil {
		t.Fatal(err)
	}
	if meta["format"] != "pt" || len(ts) != 2 || ts[0].Name != "fc1.weight" || ts[0].Data[5] != 6 || ts[1].Shape[0] != 2 {
		t.Errorf("read back %v %v", ts, meta)
	}
}

func TestReadSafetensorsErrors(t *testing.T) {
	mk := func(header string, data int) []byte {
		b := make([]byte, 8, 8+len(header)+data)
		binary.LittleEndian.PutUint64(b, uint64(len(header)))
		b = append(b, header...)
		return append(b, make([]byte, data)...)
	}
	for name, data := range map[string][]byte{
		"short":       {1, 2, 3},
		"huge header": binary.LittleEndian.AppendUint64(nil, 1<<40),
		"not json":    mk("{x", 0),
		"dtype":       mk(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, 4),
		"size":        mk(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8),
		"outside":     mk(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4),
		"gap":         mk(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"overlap":     mk(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"trailing":    mk(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8),
		"shape":       mk(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4),
		"negative":    mk(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4),
	} {
		if _, _, err := ReadSafetensors(data); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: error %v, want ErrCheckpoint", name, err)
		}
	}
}

// testCheckpoint returns a small trained checkpoint's files.
func testCheckpoint(t testing.TB) map[string][]byte {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), func(s *synth) { s.Rows, s.RowsPerPart = 100, 100 })
	out := filepath.Join(tmp, "s.ckpt")
	o := Options{Epochs: 1, Out: out, Alpha: 0.5, Threads: 1, Features: []FeaturePair{{Teacher: "h", Layer: 1}}}
	if _, err := Train(context.Background(), Config{Hidden: []int{3}, LayerNorm: true}, data, &o); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range []string{ModelFile, ConfigFile, StateFile, MetricsFile} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	return files
}

func TestCheckpointRoundTrip(t *testing.T) {
	files := testCheckpoint(t)
	fsys := fstest.MapFS{}
	for n, b := range files {
		fsys[n] = &fstest.MapFile{Data: b}
	}
	c, err := LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if c.Student.Config.Hidden[0] != 3 || c.Info.Epoch != 1 || len(c.State) == 0 {
		t.Fatalf("loaded %+v", c.Info)
	}
	dir := filepath.Join(t.TempDir(), "copy.ckpt")
	if err := WriteCheckpoint(dir, c); err != nil {
		t.Fatal(err)
	}
	for n, b := range files {
		got, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s differs after load and write (%v)", n, err)
		}
	}
	// Missing and corrupt files.
	for name, mod := range map[string]func(fstest.MapFS){
		"no model":      func(m fstest.MapFS) { delete(m, ModelFile) },
		"no config":     func(m fstest.MapFS) { delete(m, ConfigFile) },
		"config format": func(m fstest.MapFS) { m[ConfigFile] = &fstest.MapFile{Data: []byte(`{"format":"x","version":1}`)} },
		"config version": func(m fstest.MapFS) {
			m[ConfigFile] = &fstest.MapFile{Data: []byte(`{"format":"distill-student","version":9}`)}
		},
		"architecture": func(m fstest.MapFS) {
			m[ConfigFile] = &fstest.MapFile{Data: bytes.Replace(files[ConfigFile], []byte(`"hidden": [
      3
    ]`), []byte(`"hidden": [4]`), 1)}
		},
		"huge architecture": func(m fstest.MapFS) {
			m[ConfigFile] = &fstest.MapFile{Data: bytes.Replace(files[ConfigFile], []byte(`"hidden": [
      3
    ]`), []byte(`"hidden": [1000000, 1000]`), 1)}
		},
		"truncated state": func(m fstest.MapFS) { m[StateFile] = &fstest.MapFile{Data: files[StateFile][:40]} },
	} {
		m := fstest.MapFS{}
		for n, b := range files {
			m[n] = &fstest.MapFile{Data: b}
		}
		mod(m)
		_, err := LoadFS(m)
		if err == nil || !(errors.Is(err, ErrCheckpoint) || errors.Is(err, fs.ErrNotExist)) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

// TestCheckpointCrash simulates a crash between the two renames of
// WriteCheckpoint: only .NAME.old and .NAME.tmp exist. Load reads the
// previous checkpoint, and the next write restores and replaces it.
func TestCheckpointCrash(t *testing.T) {
	files := testCheckpoint(t)
	m := fstest.MapFS{}
	for n, b := range files {
		m[n] = &fstest.MapFile{Data: b}
	}
	c, err := LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "s.ckpt")
	if err := WriteCheckpoint(dir, c); err != nil {
		t.Fatal(err)
	}
	tmp, old := siblings(dir)
	if err := os.Rename(dir, old); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil { // a half-written new checkpoint
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tmp, ModelFile), []byte("partial"), 0o644)
	got, err := Load(dir)
	if err != nil || got.Info.Epoch != 1 {
		t.Fatalf("load after crash: %v", err)
	}
	if !Exists(dir) {
		t.Error("Exists after crash = false")
	}
	c.Info.Epoch = 2
	if err := WriteCheckpoint(dir, c); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || got.Info.Epoch != 2 {
		t.Fatalf("load after rewrite: %v", err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("leftovers: %v", entries)
	}
	// A crash while removing .NAME.old leaves NAME complete and part of
	// .NAME.old: the next write clears it.
	os.MkdirAll(filepath.Join(old, "x"), 0o755)
	os.WriteFile(filepath.Join(old, ConfigFile), []byte("{"), 0o644)
	if got, err := Load(dir); err != nil || got.Info.Epoch != 2 {
		t.Fatalf("load with a stale .old: %v", err)
	}
	c.Info.Epoch = 3
	if err := WriteCheckpoint(dir, c); err != nil {
		t.Fatalf("write with a stale .old: %v", err)
	}
	if got, err := Load(dir); err != nil || got.Info.Epoch != 3 {
		t.Fatalf("load after write: %v", err)
	}
	// WriteCheckpoint never replaces a directory that is not a checkpoint.
	other := filepath.Join(parent, "home")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("keep"), 0o644)
	if err := WriteCheckpoint(other, c); err == nil || !strings.Contains(err.Error(), "not a checkpoint") {
		t.Errorf("replacing a non-checkpoint directory: %v", err)
	}
}

// FuzzLoadCheckpoint feeds corrupt checkpoint files to LoadFS: it must
// return an error or a checkpoint, never panic, and allocate no more than
// the files' sizes call for. The inputs are a few KB each, which makes the
// fuzzer's minimization slow: run it with -fuzzminimizetime 0 (or a few
// seconds) to keep it exploring.
func FuzzLoadCheckpoint(f *testing.F) {
	files := testCheckpoint(f)
	f.Add(files[ModelFile], files[ConfigFile], files[StateFile])
	f.Fuzz(func(t *testing.T, model, config, state []byte) {
		m := fstest.MapFS{ModelFile: {Data: model}, ConfigFile: {Data: config}, StateFile: {Data: state}}
		c, err := LoadFS(m)
		if err == nil && (c.Student == nil || len(c.Student.Params.Data) > len(model)) {
			t.Fatalf("loaded a student of %d values from %d bytes", len(c.Student.Params.Data), len(model))
		}
	})
}

// TestWriteFuzzCorpus writes the seed corpus of FuzzLoadCheckpoint to
// testdata/fuzz with -update: a valid checkpoint and a few corruptions.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz/FuzzLoadCheckpoint")
	}
	files := testCheckpoint(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzLoadCheckpoint")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	model, config, state := files[ModelFile], files[ConfigFile], files[StateFile]
	seeds := map[string][3][]byte{
		"valid":            {model, config, state},
		"truncated-model":  {model[:len(model)/2], config, state},
		"header-length":    {append(binary.LittleEndian.AppendUint64(nil, 1<<62), model[8:]...), config, state},
		"empty":            {nil, nil, nil},
		"config-hidden":    {model, bytes.Replace(config, []byte(`"inputs": 6`), []byte(`"inputs": 60000000`), 1), state},
		"state-truncated":  {model, config, state[:len(state)/3]},
		"model-dtype-f16":  {bytes.Replace(model, []byte(`"F32"`), []byte(`"F16"`), 1), config, state},
		"model-offsets-99": {bytes.Replace(model, []byte(`"data_offsets":[0,`), []byte(`"data_offsets":[99,`), 1), config, state},
	}
	for name, s := range seeds {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range s {
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParseFeature checks that the --feature parser never panics and
// accepts only pairs it can print back.
func FuzzParseFeature(f *testing.F) {
	for _, s := range []string{"hidden=1", "conv2/out=h2:0.5", "a=b=3:1e-3", "=1", "x=", "x=1:-1", "x=h0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseFeature(s, 3)
		if err != nil {
			return
		}
		if p.Teacher == "" || p.Layer < 1 || p.Layer > 3 || !(p.Weight > 0) {
			t.Fatalf("ParseFeature(%q) = %+v", s, p)
		}
	})
}

// checkpointFS returns files as an fstest.MapFS, after mod.
func checkpointFS(files map[string][]byte, mod func(m fstest.MapFS)) fstest.MapFS {
	m := fstest.MapFS{}
	for n, b := range files {
		m[n] = &fstest.MapFile{Data: bytes.Clone(b)}
	}
	if mod != nil {
		mod(m)
	}
	return m
}

// TestCheckpointFiles checks what config.json records of the other files
// and that it round trips through CheckpointInfo.
func TestCheckpointFiles(t *testing.T) {
	files := testCheckpoint(t)
	var info CheckpointInfo
	if err := json.Unmarshal(files[ConfigFile], &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Files) != 3 {
		t.Errorf("files %v, want %s, %s and %s", info.Files, ModelFile, MetricsFile, StateFile)
	}
	for _, name := range []string{ModelFile, MetricsFile, StateFile} {
		sum := sha256.Sum256(files[name])
		if got := info.Files[name]; got.Bytes != int64(len(files[name])) || got.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s recorded as %+v, is %d bytes, sha256 %x", name, got, len(files[name]), sum)
		}
	}
	back, err := json.MarshalIndent(&info, "", "  ")
	if err != nil || !bytes.Equal(append(back, '\n'), files[ConfigFile]) {
		t.Errorf("config.json does not round trip through CheckpointInfo (%v):\n%s\nvs\n%s", err, back, files[ConfigFile])
	}
	if !bytes.Contains(files[ConfigFile], []byte(`"files": {`)) {
		t.Errorf(`config.json has no "files" key`)
	}
}

// TestCheckpointDigests changes each recorded file in ways that still
// decode (a weight, an optimizer moment, a metrics line): LoadFS refuses
// each, naming the file; a checkpoint without "files" (written before
// they were recorded) loads unchecked.
func TestCheckpointDigests(t *testing.T) {
	files := testCheckpoint(t)
	lastByte := func(name string) func(m fstest.MapFS) {
		return func(m fstest.MapFS) { d := m[name].Data; d[len(d)-1] ^= 1 } // last value's low mantissa byte
	}
	for _, tc := range []struct {
		name string
		mod  func(m fstest.MapFS)
		want string
	}{
		{"model value", lastByte(ModelFile), ModelFile + ": sha256 mismatch: the checkpoint is corrupt; re-train or restore it"},
		{"state value", lastByte(StateFile), StateFile + ": sha256 mismatch"},
		{"metrics", func(m fstest.MapFS) {
			m[MetricsFile].Data = bytes.Replace(m[MetricsFile].Data, []byte(`"epoch":1`), []byte(`"epoch":2`), 1)
		},
			MetricsFile + ": sha256 mismatch"},
		{"model truncated", func(m fstest.MapFS) { m[ModelFile].Data = m[ModelFile].Data[:len(m[ModelFile].Data)-4] }, ModelFile + ": size differs"},
		{"model extended", func(m fstest.MapFS) { m[ModelFile].Data = append(m[ModelFile].Data, 0) }, ModelFile + ": size differs"},
		{"state unrecorded", func(m fstest.MapFS) {
			m[ConfigFile].Data = bytes.Replace(m[ConfigFile].Data, []byte(`"`+StateFile+`"`), []byte(`"other"`), 1)
		}, StateFile + " is not recorded"},
	} {
		_, err := LoadFS(checkpointFS(files, tc.mod))
		if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrCheckpoint and %q", tc.name, err, tc.want)
		}
	}
	// The changed weight decodes: only the digest catches it.
	if _, _, err := ReadSafetensors(checkpointFS(files, lastByte(ModelFile))[ModelFile].Data); err != nil {
		t.Fatalf("the changed model does not decode, so the test proves nothing: %v", err)
	}
	// Missing optional files are not corruption.
	if _, err := LoadFS(checkpointFS(files, func(m fstest.MapFS) { delete(m, MetricsFile); delete(m, StateFile) })); err != nil {
		t.Errorf("without metrics and state: %v", err)
	}
	// Before this change: no "files", nothing checked.
	var raw map[string]json.RawMessage
	json.Unmarshal(files[ConfigFile], &raw)
	delete(raw, "files")
	old, _ := json.Marshal(raw)
	c, err := LoadFS(checkpointFS(files, func(m fstest.MapFS) {
		m[ConfigFile].Data = old
		lastByte(ModelFile)(m)
	}))
	if err != nil || c.Info.Files != nil {
		t.Fatalf("checkpoint without files: %v", err)
	}
}

// TestCheckpointNonFinite: weights with NaN or ±Inf are refused, naming
// the tensor; the same file with finite weights loads.
func TestCheckpointNonFinite(t *testing.T) {
	s, err := NewStudent(Config{Inputs: 3, Hidden: []int{4}, Classes: 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Standardize.Set([]float32{0, 0, 0}, []float32{1, 1, 1}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "s.ckpt")
	write := func() {
		t.Helper()
		if err := WriteCheckpoint(dir, &Checkpoint{Info: CheckpointInfo{Student: s.Config}, Student: s}); err != nil {
			t.Fatal(err)
		}
	}
	write()
	if _, err := Load(dir); err != nil {
		t.Fatalf("finite weights: %v", err)
	}
	byName := map[string]*Param{}
	for _, p := range s.Tensors() {
		byName[p.Name] = p
	}
	for _, tc := range []struct {
		tensor string
		v      float64
	}{{"fc1.weight", math.NaN()}, {"fc2.bias", math.Inf(1)}, {"input_std", math.Inf(-1)}} {
		p := byName[tc.tensor]
		if p == nil {
			t.Fatalf("no tensor %s in %v", tc.tensor, s.Tensors())
		}
		keep := p.Data[1]
		p.Data[1] = float32(tc.v)
		write()
		_, err := Load(dir)
		if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "tensor "+tc.tensor+" holds") {
			t.Errorf("%s = %v: Load %v, want ErrCheckpoint naming the tensor", tc.tensor, tc.v, err)
		}
		p.Data[1] = keep
	}
}

// TestWriteCheckpointFails injects a write error (a full disk) at each
// step of WriteCheckpoint: the error is returned, no .NAME.tmp or
// .NAME.old is left and the previous checkpoint is intact.
func TestWriteCheckpointFails(t *testing.T) {
	files := testCheckpoint(t)
	c, err := LoadFS(checkpointFS(files, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { checkpointFault = func(string) error { return nil } }()
	for _, step := range []string{ModelFile, MetricsFile, StateFile, ConfigFile, "rename"} {
		t.Run(step, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "s.ckpt")
			// The first write failing leaves nothing at all.
			checkpointFault = faultAt(step)
			if err := WriteCheckpoint(dir, c); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("first write: %v, want ENOSPC", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("failed first write left %v", entries)
			}
			checkpointFault = func(string) error { return nil }
			os.RemoveAll(dir)
			if err := WriteCheckpoint(dir, c); err != nil {
				t.Fatal(err)
			}
			checkpointFault = faultAt(step)
			next := *c
			next.Info.Epoch = 2
			if err := WriteCheckpoint(dir, &next); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("second write: %v, want ENOSPC", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 1 || entries[0].Name() != "s.ckpt" {
				t.Errorf("failed write left %v", entries)
			}
			for name, want := range files {
				if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s of the previous checkpoint changed (%v)", name, err)
				}
			}
		})
	}
}

// TestTrainCheckpointFails: Train stops with the error of a failed
// checkpoint write, and leaves the previous checkpoint and nothing else.
func TestTrainCheckpointFails(t *testing.T) {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), nil)
	parent := filepath.Join(tmp, "runs")
	o := Options{Epochs: 3, Out: filepath.Join(parent, "s.ckpt"), Threads: 1,
		OnEpoch: func(e Epoch) error {
			if e.Epoch == 1 {
				checkpointFault = func(s string) error {
					if s == ModelFile {
						return syscall.ENOSPC
					}
					return nil
				}
			}
			return nil
		}}
	defer func() { checkpointFault = func(string) error { return nil } }()
	if _, err := Train(context.Background(), Config{Hidden: []int{8}}, data, &o); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Train: %v, want ENOSPC", err)
	}
	if c, err := Load(o.Out); err != nil || c.Info.Epoch != 1 {
		t.Fatalf("checkpoint after the failed write: %v", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 || entries[0].Name() != "s.ckpt" {
		t.Errorf("left %v", entries)
	}
	// A run that fails before its first checkpoint removes the
	// directories it created for it.
	checkpointFault = func(string) error { return nil }
	o.Out = filepath.Join(tmp, "new", "runs", "s.ckpt")
	o.OnEpoch = nil
	o.OnStep = func(Step) error { return errors.New("stop") }
	if _, err := Train(context.Background(), Config{Hidden: []int{8}}, data, &o); err == nil || err.Error() != "stop" {
		t.Fatalf("Train: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("created parent directories left: %v", err)
	}
}

const trainLockEnv = "DISTILL_TRAIN_LOCK"

// trainLockRun is the run both processes of TestTrainLock make.
func trainLockRun(out string) (Config, Options) {
	return Config{Hidden: []int{8}}, Options{Epochs: 2, BatchSize: 50, Threads: 1, Alpha: 0.5, Out: out, Resume: true}
}

// TestTrainLockHelper is the child process of TestTrainLock: it trains on
// the cache $DISTILL_TRAIN_LOCK (CACHE:OUT) into OUT, printing "training"
// at the first step and waiting there until its stdin closes.
func TestTrainLockHelper(t *testing.T) {
	spec := os.Getenv(trainLockEnv)
	if spec == "" {
		t.Skip("helper process for TestTrainLock")
	}
	cache, out, _ := strings.Cut(spec, string(filepath.ListSeparator))
	data, err := formats.Open(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	cfg, o := trainLockRun(out)
	o.OnStep = func(s Step) error {
		if s.Step == 1 {
			os.Stdout.WriteString("training\n")
			io.Copy(io.Discard, os.Stdin)
		}
		return nil
	}
	if _, err := Train(context.Background(), cfg, data, &o); err != nil {
		t.Fatal(err)
	}
}

// TestTrainLock trains into one Out from two processes: while the first
// trains, the second Train fails at once with ErrLocked naming Out, with
// or without Resume, and changes nothing; once the first has finished, the
// second resumes its checkpoint. No lock file is left.
func TestTrainLock(t *testing.T) {
	if !lock.Supported {
		t.Skip("no locks on this system")
	}
	tmp := t.TempDir()
	cacheDir := filepath.Join(tmp, "train")
	data := smallCache(t, cacheDir, nil)
	out := filepath.Join(tmp, "s.ckpt")
	h := sharedtest.Hold(t, "TestTrainLockHelper", "training", trainLockEnv+"="+cacheDir+string(filepath.ListSeparator)+out)
	cfg, o := trainLockRun(out)
	for _, resume := range []bool{false, true} {
		o.Resume = resume
		start := time.Now()
		_, err := Train(context.Background(), cfg, data, &o)
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "another distill process") {
			t.Errorf("resume %v: %v, want ErrLocked naming %s", resume, err, out)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("resume %v: took %v to fail", resume, d)
		}
	}
	h.Stop(t)
	o.Resume = true
	res, err := Train(context.Background(), cfg, data, &o)
	if err != nil || res.Info.Epoch != 2 {
		t.Fatalf("after the first run finished: %v", err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 2 {
		t.Errorf("left %v besides the cache and the checkpoint", entries)
	}
}
