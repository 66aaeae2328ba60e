package guard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/train"
)

func TestNames(t *testing.T) {
	if manifestName != formats.ManifestName || configName != train.ConfigFile || modelName != train.ModelFile {
		t.Errorf("artefact names %q %q %q differ from formats/train's", manifestName, configName, modelName)
	}
	if !shardDir.MatchString(formats.ShardDirName(3, 8)) {
		t.Errorf("shard pattern does not match %s", formats.ShardDirName(3, 8))
	}
}

func touch(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	tmp := t.TempDir()
	cache := filepath.Dir(touch(t, filepath.Join(tmp, "cache", manifestName)))
	sharded := filepath.Join(tmp, "sharded")
	touch(t, filepath.Join(sharded, "shard-00000-of-00002", manifestName))
	ckpt := filepath.Dir(touch(t, filepath.Join(tmp, "s.ckpt", configName)))
	touch(t, filepath.Join(ckpt, modelName))
	model := touch(t, filepath.Join(tmp, "m.onnx"))
	plain := filepath.Join(tmp, "plain")
	os.MkdirAll(plain, 0o755)
	link := filepath.Join(tmp, "link.onnx")
	if err := os.Symlink(model, link); err != nil {
		t.Fatal(err)
	}
	linkDir := filepath.Join(tmp, "cache-link")
	if err := os.Symlink(cache, linkDir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		path string
		want Kind
	}{{cache, Cache}, {sharded, Cache}, {ckpt, Checkpoint}, {model, None}, {plain, None}, {filepath.Join(tmp, "missing"), None}} {
		if got := KindOf(k.path); got != k.want {
			t.Errorf("KindOf(%s) = %v, want %v", k.path, got, k.want)
		}
	}
	in := func(flag, p string) Path { return Path{Flag: flag, Path: p} }
	out := func(p string, k Kind) []Path { return []Path{{Flag: "--out", Path: p, Kind: k}} }
	for _, tc := range []struct {
		name    string
		inputs  []Path
		outputs []Path
		want    string // "" = allowed
	}{
		{"same file", []Path{in("--model", model)}, out(model, File), "is also the input --model"},
		{"same file through a symlink", []Path{in("--model", link)}, out(model, File), "is also the input --model"},
		{"relative same file", []Path{in("--model", model)}, out(filepath.Join(tmp, ".", "x", "..", "m.onnx"), File), "is also the input"},
		{"inside a checkpoint input", []Path{in("--student", ckpt)}, out(filepath.Join(ckpt, modelName), File), "is inside the input --student " + ckpt + "; choose"},
		{"inside a cache input", []Path{in("--data", cache)}, out(filepath.Join(cache, manifestName), File), "is inside the input --data"},
		{"inside a cache through a symlinked dir", []Path{in("--data", cache)}, out(filepath.Join(linkDir, "x.npy"), File), "is inside the input --data"},
		{"contains an input", []Path{in("--model", model)}, out(tmp, Dir), "contains the input --model " + model + "; choose"},
		{"a cache for a report", nil, out(cache, Dir), "is a cache, not a directory"},
		{"a checkpoint for a cache", nil, out(ckpt, Cache), "is a student checkpoint, not a cache"},
		{"a cache for a checkpoint", nil, out(cache, Checkpoint), "is a cache, not a student checkpoint"},
		{"a file inside another cache", nil, out(filepath.Join(cache, "x.json"), File), "is inside a cache"},
		{"a file inside a checkpoint", nil, out(filepath.Join(ckpt, "sub", "x.json"), File), "is inside a student checkpoint"},
		{"a file for a cache", nil, out(model, Cache), "is a file; a cache is written as a directory"},
		{"resume a cache", []Path{in("--data", model)}, out(cache, Cache), ""},
		{"a shard into a sharded cache", nil, out(filepath.Join(sharded, "shard-00001-of-00002"), Cache), ""},
		{"replace a checkpoint", nil, out(ckpt, Checkpoint), ""},
		{"a new file beside the input", []Path{in("--model", model)}, out(filepath.Join(tmp, "new", "out.json"), File), ""},
		{"a report inside a plain run directory", []Path{in("--model", model)}, out(filepath.Join(plain, "report"), Dir), ""},
		{"empty paths skipped", []Path{in("--teacher-cache", "")}, out("", File), ""},
	} {
		err := Check(tc.inputs, tc.outputs)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckRemote(t *testing.T) {
	for _, c := range []struct {
		in, out string
		bad     bool
	}{
		{"s3://b/data.parquet", "s3://b/cache", false},
		{"s3://b/cache", "s3://b/cache/", true},
		{"s3://b/x", "s3://b/x/shard", true},
		{"s3://b/x/y.onnx", "s3://b/x", true},
		{"s3://b/x", "gs://b/x", false},
		{"/data/t.onnx", "s3://b/t.onnx", false},
	} {
		err := Check([]Path{{Flag: "--data", Path: c.in}}, []Path{{Flag: "--out", Path: c.out, Kind: Cache}})
		if (err != nil) != c.bad {
			t.Errorf("Check(%s → %s) = %v, want error %v", c.in, c.out, err, c.bad)
		}
	}
	dir := t.TempDir()
	if err := Check([]Path{{Flag: "--data", Path: "file://" + dir}}, []Path{{Flag: "--out", Path: dir + "/x"}}); err == nil {
		t.Error("a file:// input containing the output passed")
	}
}
