package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
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
