package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/s3test"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// The tests in this file run distill in this process against the loopback
// S3 of s3test, which sets the process environment: they must not be
// parallel.

// putFile copies the local file path to key in the fake S3 bucket and
// returns its s3:// location.
func putFile(t *testing.T, s *s3test.Server, path, key string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(t, key, data)
	return s3test.Prefix(key)
}

// attemptID matches the attempt id in a part's file name.
var attemptID = regexp.MustCompile(`-[0-9a-f]{12}\b`)

// normalized returns m without what two runs of the same extraction
// differ in: the creation time, the recorded dataset location, the
// attempt ids in the part names, and the parts' sizes and hashes (each
// part embeds the manifest, so the first two reach its bytes).
func normalized(m formats.Manifest) formats.Manifest {
	m.Created = time.Time{}
	m.Dataset.Path = ""
	parts := append([]formats.PartInfo(nil), m.Parts...)
	for i := range parts {
		parts[i].Bytes, parts[i].SHA256 = 0, ""
		parts[i].File = attemptID.ReplaceAllString(parts[i].File, "")
	}
	m.Parts = parts
	return m
}

// TestExtractRemoteInputs extracts MNIST test with the teacher and the
// dataset (idx images, their sibling labels found beside them) on S3 into
// a local cache: it holds the rows, scores and hidden states of the
// all-local run bit for bit, and its manifest is the local one's (same
// digest once the creation time, the dataset location and the part
// hashes, which embed those two, are set aside): the same teacher base
// name and sha256, dataset sha256s, labels and settings.
func TestExtractRemoteInputs(t *testing.T) {
	requireLib(t)
	s := s3test.Start(t)
	images := mnistTestImages(t)
	labels := strings.Replace(images, "images-idx3", "labels-idx1", 1)
	teacher := "../../fixtures/teacher/mnist_cnn.onnx"
	rTeacher := putFile(t, s, teacher, "in/teachers/mnist_cnn.onnx")
	rImages := putFile(t, s, images, "in/mnist/"+filepath.Base(images))
	putFile(t, s, labels, "in/mnist/"+filepath.Base(labels))

	tmp := t.TempDir()
	args := func(teacher, data, out string) []string {
		return []string{"extract", "--teacher", teacher, "--data", data, "--out", out, "--scale", "1/255",
			"--hidden", "hidden", "--batch", "250", "--part-rows", "2500", "--threads", "1"}
	}
	local, remote := filepath.Join(tmp, "local"), filepath.Join(tmp, "remote")
	mustDistill(t, args(teacher, images, local)...)
	mustDistill(t, args(rTeacher, rImages, remote)...)
	sameContents(t, local, remote)

	lm, err := formats.ReadManifest(local)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := formats.ReadManifest(remote)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Teacher.File != "mnist_cnn.onnx" || rm.Teacher.SHA256 != lm.Teacher.SHA256 || rm.Dataset.SHA256 != lm.Dataset.SHA256 || !strings.Contains(rm.Dataset.SHA256, ",") {
		t.Errorf("remote run: teacher %s %s, dataset sha256 %s; local: %s %s, %s (want images,labels)",
			rm.Teacher.File, rm.Teacher.SHA256, rm.Dataset.SHA256, lm.Teacher.File, lm.Teacher.SHA256, lm.Dataset.SHA256)
	}
	if rm.Dataset.Path != rImages {
		t.Errorf("remote run records dataset %q, want %s", rm.Dataset.Path, rImages)
	}
	if n, r := normalized(lm), normalized(rm); n.Digest() != r.Digest() {
		a, _ := json.MarshalIndent(n, "", " ")
		b, _ := json.MarshalIndent(r, "", " ")
		t.Errorf("manifests differ beyond the dataset location and time:\nlocal  %s\nremote %s", a, b)
	}
}

// TestRemoteMissingInputs: a teacher, dataset or tokenizer that is not in
// the bucket, and a bucket that does not exist, are one line naming the
// location and exit 1, with nothing written at --out; a location with an
// unknown scheme is one too (exit 1, as every bad location).
func TestRemoteMissingInputs(t *testing.T) {
	s := s3test.Start(t)
	teacher := putFile(t, s, "../../fixtures/tiny/mlp_logits.onnx", "miss/mlp_logits.onnx")
	tmp := t.TempDir()
	data := filepath.Join(tmp, "x.npy")
	if err := dataset.WriteNPYFile(data, []int{4, 4}, make([]float32, 16)); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tok512.bin")
	text := filepath.Join(tmp, "in.txt")
	if err := os.WriteFile(text, []byte("once upon a time\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"teacher", []string{"extract", "--teacher", s3test.Prefix("miss/none.onnx"), "--data", data}, s3test.Prefix("miss/none.onnx"), exitFailure},
		{"dataset", []string{"extract", "--teacher", teacher, "--data", s3test.Prefix("miss/none.parquet")}, s3test.Prefix("miss/none.parquet"), exitFailure},
		{"bucket", []string{"extract", "--teacher", "s3://no-such-bucket/t.onnx", "--data", data}, `bucket "no-such-bucket" does not exist`, exitFailure},
		{"tokenizer", []string{"data", "text", "--seq-len", "4", "--tokenizer", s3test.Prefix("miss/tok.bin"), text}, s3test.Prefix("miss/tok.bin"), exitFailure},
		{"text input", []string{"data", "text", "--seq-len", "4", "--tokenizer", tok, s3test.Prefix("miss/in.txt")}, s3test.Prefix("miss/in.txt"), exitFailure},
		{"unknown scheme", []string{"extract", "--teacher", "hdfs://nn/t.onnx", "--data", data}, `unknown scheme "hdfs://"`, exitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(tmp, strings.ReplaceAll(tc.name, " ", "-"))
			code, _, stderr := runDistill(append(tc.args, "--out", out+".out")...)
			msg := strings.TrimSpace(stderr)
			t.Logf("exit %d: %s", code, msg)
			if code != tc.code || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") > 1 {
				t.Fatalf("exit %d (want %d), stderr %q: want one line naming %s", code, tc.code, stderr, tc.want)
			}
			if _, err := os.Stat(out + ".out"); err == nil {
				t.Errorf("%s.out was created", out)
			}
		})
	}
	if keys := s.Keys(t, "miss/"); len(keys) != 1 {
		t.Errorf("the bucket holds %v; want only the teacher", keys)
	}
}

// TestDataRemote writes MNIST and token windows to S3 with distill data,
// reading the tokenizer and the text from S3 too: the MNIST object is the
// local file byte for byte, the token dataset (and its validation file)
// hold the local run's windows, with the same metadata but for the
// recorded locations of the tokenizer and the input; distill data info
// and distill eval read the remote files.
func TestDataRemote(t *testing.T) {
	if _, err := dataset.MNISTDir(); err != nil {
		t.Skipf("MNIST unavailable: %v", err)
	}
	s := s3test.Start(t)
	tmp := t.TempDir()
	mustDistill(t, "data", "mnist", "--split", "test", "--out", filepath.Join(tmp, "m.parquet"))
	out := mustDistill(t, "data", "mnist", "--split", "test", "--out", s3test.Prefix("data/m.parquet"))
	if !strings.Contains(out, s3test.Prefix("data/m.parquet")) {
		t.Errorf("data mnist printed %q", out)
	}
	want, err := os.ReadFile(filepath.Join(tmp, "m.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Object(t, "data/m.parquet"); string(got) != string(want) {
		t.Errorf("the S3 object (%d bytes) is not the local file (%d bytes)", len(got), len(want))
	}
	info := mustDistill(t, "data", "info", s3test.Prefix("data/m.parquet"))
	if !strings.Contains(info, "10000 rows") {
		t.Errorf("data info of the S3 object: %q", info)
	}

	seq := sharedtest.Dir(t, "teachers", "seq")
	tok, text := filepath.Join(seq, "tok512.bin"), filepath.Join(seq, "tinystories_val.txt")
	rTok := putFile(t, s, tok, "data/tok512.bin")
	rText := putFile(t, s, text, "data/stories.txt")
	flags := []string{"data", "text", "--seq-len", "32", "--val-every", "5", "--threads", "2"}
	lOut, lVal := filepath.Join(tmp, "t.arrow"), filepath.Join(tmp, "v.parquet")
	rOut, rVal := s3test.Prefix("data/t.arrow"), s3test.Prefix("data/v.parquet")
	mustDistill(t, append(flags, "--tokenizer", tok, "--out", lOut, "--val-out", lVal, text)...)
	mustDistill(t, append(flags, "--tokenizer", rTok, "--out", rOut, "--val-out", rVal, rText)...)
	for _, p := range [][2]string{{lOut, rOut}, {lVal, rVal}} {
		lm, err := dataset.ReadTokensMeta(p[0])
		if err != nil {
			t.Fatal(err)
		}
		rm, err := dataset.ReadTokensMeta(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if rm.Tokenizer.Path != rTok || len(rm.Inputs) != 1 || rm.Inputs[0].Path != rText {
			t.Errorf("%s records tokenizer %s and inputs %+v", p[1], rm.Tokenizer.Path, rm.Inputs)
		}
		rm.Tokenizer.Path, rm.Inputs[0].Path = lm.Tokenizer.Path, lm.Inputs[0].Path
		if !reflect.DeepEqual(lm, rm) {
			t.Errorf("%s metadata %+v; local %+v", p[1], rm, lm)
		}
		if lw, rw := datasetRows(t, p[0]), datasetRows(t, p[1]); len(lw) == 0 || !reflect.DeepEqual(lw, rw) {
			t.Errorf("%s: %d windows differ from the local file's %d", p[1], len(rw), len(lw))
		}
	}
}

// datasetRows reads every row of the dataset at loc.
func datasetRows(t *testing.T, loc string) map[string][]float32 {
	t.Helper()
	d, err := dataset.Open(loc, &dataset.Options{Label: dataset.NoLabel})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	all := map[string][]float32{}
	for b, err := range dataset.All(d, 0, 500) {
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range b.Cols {
			all[k] = append(all[k], v...)
		}
	}
	return all
}

// TestEvalRemoteModel evaluates an ONNX classifier and a dataset both on
// S3: the figures are the local run's, and the result records the model
// at its URL with the sha256 of its bytes.
func TestEvalRemoteModel(t *testing.T) {
	requireLib(t)
	s := s3test.Start(t)
	model := "../../fixtures/teacher/mnist_cnn.onnx"
	images := mnistTestImages(t)
	labels := strings.Replace(images, "images-idx3", "labels-idx1", 1)
	rModel := putFile(t, s, model, "eval/mnist_cnn.onnx")
	rImages := putFile(t, s, images, "eval/"+filepath.Base(images))
	putFile(t, s, labels, "eval/"+filepath.Base(labels))
	run := func(model, data string) eval.Result {
		t.Helper()
		out := mustDistill(t, "eval", "--model", model, "--data", data, "--scale", "1/255", "--bench-time", "0", "--json", "--threads", "1")
		var r eval.Result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return r
	}
	l, r := run(model, images), run(rModel, rImages)
	if r.Model.Path != rModel || r.Model.File != rModel || r.Model.SHA256 != l.Model.SHA256 || r.Model.FileBytes != l.Model.FileBytes {
		t.Errorf("remote model recorded as %+v; local %+v", r.Model, l.Model)
	}
	if r.Data.Path != rImages {
		t.Errorf("remote data recorded as %s", r.Data.Path)
	}
	if l.Accuracy == nil || r.Accuracy == nil || *r.Accuracy != *l.Accuracy || *r.Errors != *l.Errors || r.Rows != l.Rows || r.Rows != 10000 || *r.ECE != *l.ECE {
		t.Errorf("figures differ: remote %d rows, accuracy %v, ECE %v; local %d rows, accuracy %v, ECE %v", r.Rows, r.Accuracy, r.ECE, l.Rows, l.Accuracy, l.ECE)
	}
}
