package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/s3test"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
)

// ckptFiles reads the files of the checkpoint at loc (a remote one's
// current save) through train.FetchCheckpoint.
func ckptFiles(t *testing.T, loc string) map[string][]byte {
	t.Helper()
	dir, cleanup, err := train.FetchCheckpoint(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	return dirFiles(t, dir)
}

func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func sameFileSet(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%s: %d files vs %d", what, len(a), len(b))
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s: %s differs", what, name)
		}
	}
}

// TestRemoteTrainExportEvalReport trains an MLP into s3://, resumes it,
// exports it from s3:// to s3://, evaluates it from s3:// with --out on
// s3:// and reports the run on s3://; every result equals the same steps
// done locally (the checkpoint's and the ONNX file's bytes, the metrics)
// and records the locations as given.
func TestRemoteTrainExportEvalReport(t *testing.T) {
	s := s3test.Start(t)
	tmp := t.TempDir()
	data := trainTestCache(t, filepath.Join(tmp, "train"), 400, 1, false)
	run := s3test.Prefix("run")
	trainArgs := func(out string) []string {
		return []string{"train", "--cache", data, "--out", out, "--layers", "16", "--epochs", "2",
			"--batch", "32", "--lr", "0.01", "--feature", "h=1:0.5", "--threads", "1"}
	}
	local := filepath.Join(tmp, "local", "s.ckpt")
	mustDistill(t, trainArgs(local)...)
	remote := store.Join(run, "s.ckpt")
	if out := mustDistill(t, trainArgs(remote)...); !strings.Contains(out, "→ "+remote) {
		t.Errorf("train printed %q, want the location", out)
	}
	if code, _, stderr := runDistill(trainArgs(remote)...); code != exitFailure || !strings.Contains(stderr, "--resume") {
		t.Errorf("a fresh run into the remote checkpoint: exit %d: %s", code, stderr)
	}
	mustDistill(t, append(trainArgs(remote), "--resume")...) // finished: nothing to do
	sameFileSet(t, "checkpoint", dirFiles(t, local), ckptFiles(t, remote))

	// export: s3:// to s3:// gives the local export's bytes.
	mustDistill(t, "export", "--student", local, "--out", filepath.Join(tmp, "s.onnx"))
	want, err := os.ReadFile(filepath.Join(tmp, "s.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if out := mustDistill(t, "export", "--student", remote, "--out", store.Join(run, "s.onnx")); !strings.Contains(out, store.Join(run, "s.onnx")) {
		t.Errorf("export printed %q", out)
	}
	if got := s.Object(t, "run/s.onnx"); !bytes.Equal(got, want) {
		t.Errorf("the ONNX file exported from and to s3:// (%d bytes) differs from the local export (%d bytes)", len(got), len(want))
	}

	// eval: from s3://, --out on s3://, the metrics of the local eval.
	evalArgs := []string{"--data", data, "--bench-time", "1ms", "--batch", "32", "--threads", "1"}
	ref := runEvalJSON(t, append(evalArgs, "--model", local)...)
	if out := mustDistill(t, append([]string{"eval"}, append(evalArgs, "--model", remote, "--out", store.Join(run, "eval", "s.json"), "--report")...)...); !strings.Contains(out, "report: "+store.Join(run, "report", "index.html")) {
		t.Errorf("eval --report printed %q", out)
	}
	var got eval.Result
	if err := json.Unmarshal(s.Object(t, "run/eval/s.json"), &got); err != nil {
		t.Fatal(err)
	}
	if got.Model.Path != remote || !strings.HasPrefix(got.Model.File, remote+"/save-") || got.Model.SHA256 != ref.Model.SHA256 {
		t.Errorf("eval records model %q file %q sha256 %s, want %s, its current save and %s", got.Model.Path, got.Model.File, got.Model.SHA256, remote, ref.Model.SHA256)
	}
	if got.Accuracy == nil || ref.Accuracy == nil || got.KL == nil || ref.KL == nil || *got.Accuracy != *ref.Accuracy || *got.KL != *ref.KL {
		t.Errorf("eval from s3://: accuracy and KL differ from the local eval's: %s vs %s", s.Object(t, "run/eval/s.json"), mustJSON(t, ref))
	}

	// report: the run on s3://, the report written beside it.
	out := mustDistill(t, "report", run)
	if !strings.Contains(out, "report: "+store.Join(run, "report", "index.html")) {
		t.Errorf("report printed %q", out)
	}
	page := string(s.Object(t, "run/report/index.html"))
	for _, want := range []string{"<td>s</td>", run} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	for _, m := range imgSrc.FindAllStringSubmatch(page, -1) {
		if len(s.Object(t, "run/report/"+m[1])) == 0 {
			t.Errorf("chart %s is empty", m[1])
		}
	}
	if n := len(imgSrc.FindAllStringSubmatch(page, -1)); n == 0 {
		t.Error("the report has no charts")
	}
}

// TestRemoteCheckpointKill SIGKILLs distill train while it uploads the
// second epoch's checkpoint to s3:// (its state.safetensors, after the
// model of that save): the checkpoint still loads, checked, as epoch 1,
// and a rerun with
// --resume finishes with the bytes of an uninterrupted run.
func TestRemoteCheckpointKill(t *testing.T) {
	s := s3test.Start(t)
	tmp := t.TempDir()
	data := trainTestCache(t, filepath.Join(tmp, "train"), 400, 1, false)
	args := func(out string, epochs string) []string {
		return []string{"train", "--cache", data, "--out", out, "--layers", "16", "--epochs", epochs, "--batch", "32", "--threads", "1", "--resume"}
	}
	ref := filepath.Join(tmp, "ref")
	mustDistill(t, args(ref, "3")...)
	remote := s3test.Prefix("kill/s.ckpt")

	var mu sync.Mutex
	var victim *os.Process
	killed := false
	s.Hook = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPut || victim == nil || !strings.Contains(r.URL.Path, "/save-000002-") || !strings.HasSuffix(r.URL.Path, "/"+train.StateFile) {
			return false
		}
		victim.Signal(syscall.SIGKILL)
		victim, killed = nil, true
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	cmd, buf := startDistill(t, args(remote, "3")...)
	mu.Lock()
	victim = cmd.Process
	mu.Unlock()
	cmd.Wait()
	s.Hook = nil
	if !killed {
		t.Fatalf("the run was not killed during the upload:\n%s", buf.String())
	}
	var partial bool
	for _, k := range s.Keys(t, "kill/s.ckpt/") {
		partial = partial || strings.Contains(k, "/save-000002-")
	}
	if !partial {
		t.Fatal("the killed save uploaded nothing; the test proves nothing")
	}
	// Load checks every file against config.json's sizes and sha256: a
	// save mixed with the killed one would fail here.
	if c, err := train.Load(remote); err != nil || c.Info.Epoch != 1 {
		t.Fatalf("Load after the kill: %v", err)
	}
	mustDistill(t, args(remote, "3")...)
	sameFileSet(t, "resumed", dirFiles(t, ref), ckptFiles(t, remote))
	for _, k := range s.Keys(t, "kill/s.ckpt/") {
		if strings.Contains(k, "/save-000002-") && !slices.Contains([]string{train.ModelFile, train.MetricsFile, train.StateFile, train.ConfigFile}, filepath.Base(k)) {
			t.Errorf("unexpected object %s", k)
		}
	}
}

// TestRemoteErrors: a missing or denied remote checkpoint or model is one
// line naming the location and the cause, exit 1, and nothing is written.
func TestRemoteErrors(t *testing.T) {
	s := s3test.Start(t)
	out := filepath.Join(t.TempDir(), "x.onnx")
	missing, denied := s3test.Prefix("nothing/s.ckpt"), "s3://"+s3test.DeniedBucket+"/s.ckpt"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--student", missing, "--out", out}, "holds no checkpoint (no checkpoint.json; file does not exist): give the --out of a distill train run"},
		{[]string{"export", "--student", denied, "--out", out}, "access denied"},
		{[]string{"export", "--student", missing, "--out", s3test.Prefix("x.onnx")}, "holds no checkpoint"},
		{[]string{"eval", "--model", missing, "--data", out, "--out", s3test.Prefix("e.json")}, "no checkpoint, model folder or file there"},
		{[]string{"eval", "--model", denied, "--data", out}, "access denied"},
		{[]string{"generate", "--model", denied, "--tokenizer", filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tok512.bin"), "--out", s3test.Prefix("g.jsonl")}, "access denied"},
		{[]string{"report", s3test.Prefix("nothing")}, "no checkpoints, eval outputs or samples"},
		{[]string{"export", "--student", "ftp://host/s.ckpt", "--out", out}, `unknown scheme "ftp://"`},
	} {
		code, stdout, stderr := runDistill(tc.args...)
		t.Logf("distill %s: exit %d: %s", tc.args[0], code, stderr)
		msg := strings.TrimSpace(stderr)
		if code == exitOK || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
			t.Errorf("distill %q: exit %d, stderr %q, want one line with %q (stdout %q)", tc.args, code, stderr, tc.want, stdout)
		}
		if tc.want != "" && code != exitFailure {
			t.Errorf("distill %q: exit %d, want %d", tc.args, code, exitFailure)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed export wrote --out")
	}
	if keys := s.Keys(t, ""); len(keys) != 0 {
		t.Errorf("failed commands wrote %v", keys)
	}
}

// TestRemoteTransformer trains a tiny transformer into s3:// and exports
// it from there as an LM folder on s3://: the folder's objects equal a
// local export of the local run's checkpoint, model.onnx uploaded last.
// Then generate reads a Hugging Face directory from s3:// and streams its
// samples to s3://: the JSONL equals a local run's.
func TestRemoteTransformer(t *testing.T) {
	s := s3test.Start(t)
	dir := t.TempDir()
	ckpt, _, cache := trainTinyLM(t, dir)
	remote := s3test.Prefix("lm/student")
	mustDistill(t, "train", "--student", "transformer", "--cache", cache, "--out", remote, "--epochs", "1", "--batch", "8",
		"--layers", "2", "--dim", "32", "--heads", "4", "--kv-heads", "2", "--ffn", "64", "--lr", "3e-3", "--threads", "1")
	sameFileSet(t, "transformer checkpoint", dirFiles(t, ckpt), ckptFiles(t, remote))

	var order []string
	s.Hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/lm/export/") {
			order = append(order, filepath.Base(r.URL.Path))
		}
		return false
	}
	local := filepath.Join(dir, "export")
	mustDistill(t, "export", "--student", ckpt, "--out", local)
	mustDistill(t, "export", "--student", remote, "--out", s3test.Prefix("lm/export"))
	s.Hook = nil
	want := dirFiles(t, local)
	got := map[string][]byte{}
	for _, k := range s.Keys(t, "lm/export/") {
		got[strings.TrimPrefix(k, "lm/export/")] = s.Object(t, k)
	}
	sameFileSet(t, "LM export", want, got)
	if len(order) == 0 || order[len(order)-1] != "model.onnx" {
		t.Errorf("upload order %v, want model.onnx last", order)
	}

	seq := sharedtest.Dir(t, "teachers", "seq")
	hf := s3test.Prefix("models/stories260K-hf")
	if err := store.UploadDir(context.Background(), filepath.Join(seq, "stories260K-hf"), hf, ""); err != nil {
		t.Fatal(err)
	}
	gen := func(model, out string) {
		mustDistill(t, "generate", "--model", model, "--tokenizer", filepath.Join(seq, "tok512.bin"), "--prompt", "Once upon a time",
			"--samples", "3", "--max-new", "20", "--seed", "7", "--threads", "1", "--out", out)
	}
	gen(filepath.Join(seq, "stories260K-hf"), filepath.Join(dir, "gen.jsonl"))
	gen(hf, s3test.Prefix("gen/gen.jsonl"))
	wantJSONL, err := os.ReadFile(filepath.Join(dir, "gen.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Object(t, "gen/gen.jsonl"); !bytes.Equal(got, wantJSONL) || bytes.Count(got, []byte("\n")) != 3 {
		t.Errorf("samples on s3:// (%d bytes) differ from the local run's (%d bytes)", len(got), len(wantJSONL))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRemoteGenerateInterrupt interrupts distill generate streaming its
// samples to s3://: the JSONL object appears on Ctrl-C holding every
// finished sample as whole lines, the --tokens dataset on s3:// the same
// samples.
func TestRemoteGenerateInterrupt(t *testing.T) {
	s := s3test.Start(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	out, tokens := s3test.Prefix("gen/gen.jsonl"), s3test.Prefix("gen/gen.parquet")
	cmd, buf := startDistill(t, "generate", "--model", filepath.Join(seq, "stories260K-hf"), "--tokenizer", filepath.Join(seq, "tok512.bin"),
		"--samples", "100000", "--max-new", "200", "--batch", "1", "--eos", "-1", "--threads", "1", "--out", out, "--tokens", tokens, "--seq-len", "64")
	time.Sleep(3 * time.Second)
	if keys := s.Keys(t, "gen/"); len(keys) != 0 {
		t.Errorf("objects before the run ends: %v", keys)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d\n%s", code, err, exitInterrupted, buf.String())
	}
	local := filepath.Join(t.TempDir(), "gen.jsonl")
	if err := os.WriteFile(local, s.Object(t, "gen/gen.jsonl"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs := readJSONL(t, local)
	if len(recs) == 0 || !strings.Contains(buf.String(), "interrupted after "+strconv.Itoa(len(recs))+" of 100,000 samples") {
		t.Fatalf("%d samples in the object; stderr:\n%s", len(recs), buf.String())
	}
	for _, r := range recs {
		if len(r.IDs) != 200 {
			t.Errorf("a sample of %d ids in the JSONL", len(r.IDs))
		}
	}
	ltok := filepath.Join(t.TempDir(), "gen.parquet")
	if err := os.WriteFile(ltok, s.Object(t, "gen/gen.parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	meta, err := dataset.ReadTokensMeta(ltok)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Documents != int64(len(recs)) {
		t.Errorf("token dataset of %d documents; JSONL has %d samples", meta.Documents, len(recs))
	}
}
