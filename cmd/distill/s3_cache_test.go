package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/s3test"
	"github.com/distill-ml/distill/internal/store"
)

// holdPartUpload makes the server hold the n-th PUT of a part object (a
// single PUT or a multipart part) until release is closed; started is
// closed when it arrives. The body is left unread, so the upload is in
// flight, not done, while it is held; on release the server drops it
// (500) as it would a connection cut mid-body. (Had the server read the
// whole body, the part would land unlisted after the client died: the
// attempt's next part, which a resume adopts; formats' TestCrash covers
// that.)
func holdPartUpload(s *s3test.Server, n int32) (started, release chan struct{}) {
	started, release = make(chan struct{}), make(chan struct{})
	var count atomic.Int32
	s.Hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/part-") && count.Add(1) == n {
			close(started)
			<-release
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		return false
	}
	return started, release
}

// TestExtractS3KillDuringUpload SIGKILLs distill extract while a part is
// being uploaded to s3://: nothing is committed, the part in flight never
// appears, the attempt's journal lists the parts before it; a rerun with
// --resume continues from there, and the committed cache holds exactly
// the rows, scores and hidden states of an uninterrupted local run.
func TestExtractS3KillDuringUpload(t *testing.T) {
	requireLib(t)
	s := s3test.Start(t)
	tmp := t.TempDir()
	ref := filepath.Join(tmp, "ref")
	mustDistill(t, extractArgs(t, ref)...)
	out := s3test.Prefix("killed")

	started, release := holdPartUpload(s, 4)
	cmd, buf := startDistill(t, extractArgs(t, out)...)
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no fourth part upload after 60 s:\n%s", buf)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(release)
	s.Hook = nil

	if _, err := formats.ReadManifest(out); err == nil {
		t.Fatal("the killed run committed")
	}
	as, err := formats.Attempts(out)
	if err != nil || len(as) != 1 || len(as[0].Manifest.Parts) != 3 {
		t.Fatalf("after the kill: attempts %+v, %v; want one with the 3 parts before the one in flight", as, err)
	}
	inFlight := partName(as[0], 3)
	for _, k := range s.Keys(t, "killed/") {
		if strings.HasSuffix(k, inFlight) {
			t.Fatalf("the part being uploaded at the kill appeared: %s", k)
		}
	}
	// Readers refuse the uncommitted shard, saying how far it got.
	if code, _, stderr := runDistill("inspect", out); code != exitFailure || !strings.Contains(stderr, "has no committed manifest.json") || !strings.Contains(stderr, "1500 rows") {
		t.Errorf("inspect of the uncommitted shard: exit %d: %s", code, stderr)
	}
	// A plain rerun refuses the uncommitted attempt; --resume continues it.
	if code, _, stderr := runDistill(extractArgs(t, out)...); code != exitFailure || !strings.Contains(stderr, "--resume") {
		t.Fatalf("rerun without --resume: exit %d: %s", code, stderr)
	}
	res := mustDistill(t, append(extractArgs(t, out), "--resume")...)
	if !strings.Contains(res, "(1500 rows already complete)") {
		t.Errorf("resume printed %q, want it to continue after 1500 rows", res)
	}
	sameContents(t, ref, out)
	// The resumed attempt superseded the killed one: no leftovers.
	if got := mustDistill(t, "inspect", out, "--verify", "--rows", "0"); !strings.Contains(got, "verify: OK") || strings.Contains(got, "leftovers") {
		t.Errorf("inspect --verify after the resume:\n%s", got)
	}
	// Resuming a committed shard does nothing.
	if got := mustDistill(t, append(extractArgs(t, out), "--resume")...); !strings.Contains(got, "nothing to do") {
		t.Errorf("resume of the committed shard printed %q", got)
	}

	// What a duplicate worker killed after the commit leaves: listed by
	// --verify (which still passes), removed by --gc, never read.
	junk := []string{"killed/part-00000-0123456789ab.parquet", "killed/_attempt-0123456789ab.json"}
	for _, k := range junk {
		s.Put(t, k, []byte("junk"))
	}
	got := mustDistill(t, "inspect", out, "--verify", "--rows", "0")
	if !strings.Contains(got, "verify: OK") || !strings.Contains(got, "leftovers: 2 files") || !strings.Contains(got, "s3://"+s3test.Bucket+"/"+junk[0]) {
		t.Errorf("inspect --verify with leftovers:\n%s", got)
	}
	if got := mustDistill(t, "inspect", out, "--gc", "--rows", "0"); !strings.Contains(got, "gc: removed 2 files") {
		t.Errorf("inspect --gc:\n%s", got)
	}
	for _, k := range s.Keys(t, "killed/") {
		if strings.Contains(k, "0123456789ab") {
			t.Errorf("--gc left %s", k)
		}
	}
	sameContents(t, ref, out)
}

// partName is the name of Parquet part i of attempt a.
func partName(a formats.Attempt, i int) string { return fmt.Sprintf("part-%05d-%s.parquet", i, a.ID) }

// TestExtractDuplicateWorkers runs two workers on one shard at once, as a
// Kubernetes Indexed Job does when it starts a replacement pod while the
// old one is still terminating. On s3:// (no lock) both finish with exit
// 0: one commits, the other finds the commit, removes its own parts and
// says so; the cache equals an uninterrupted run's and holds no
// leftovers. Locally the second worker fails at once on the directory
// lock and the first finishes.
func TestExtractDuplicateWorkers(t *testing.T) {
	requireLib(t)
	s := s3test.Start(t)
	tmp := t.TempDir()
	ref := filepath.Join(tmp, "ref")
	mustDistill(t, extractArgs(t, ref)...)

	t.Run("s3", func(t *testing.T) {
		out := s3test.Prefix("dup")
		args := append(extractArgs(t, out), "--resume")
		var wg sync.WaitGroup
		outs := make([]*bytes.Buffer, 2)
		errs := make([]error, 2)
		for i := range 2 {
			var cmd *exec.Cmd
			cmd, outs[i] = startDistill(t, args...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = cmd.Wait()
			}()
			if i == 0 {
				time.Sleep(300 * time.Millisecond) // the second resumes the first's attempt
			}
		}
		wg.Wait()
		lost := 0
		for i := range 2 {
			if errs[i] != nil {
				t.Fatalf("worker %d: %v\n%s", i, errs[i], outs[i])
			}
			o := outs[i].String()
			if strings.Contains(o, "another attempt committed") || strings.Contains(o, "nothing to do") {
				lost++
			}
		}
		if lost != 1 {
			t.Errorf("%d workers say the other committed, want 1:\n%s\n---\n%s", lost, outs[0], outs[1])
		}
		sameContents(t, ref, out)
		if got := mustDistill(t, "inspect", out, "--verify", "--rows", "0"); strings.Contains(got, "leftovers") {
			t.Errorf("leftovers after the duplicate workers:\n%s", got)
		}
		_ = s
	})
	t.Run("local", func(t *testing.T) {
		out := filepath.Join(tmp, "dup")
		args := append(extractArgs(t, out), "--resume")
		cmd, buf := startDistill(t, args...)
		waitForPart(t, out, cmd, buf)
		code, _, stderr := runDistill(args...)
		if code != exitFailure || !strings.Contains(stderr, "another distill process is writing this cache") {
			t.Errorf("second local worker: exit %d: %s", code, stderr)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("first local worker: %v\n%s", err, buf)
		}
		sameContents(t, ref, out)
	})
}

// TestS3Pipeline runs the whole pipeline with everything on the fake S3:
// the dataset, the cache, the checkpoint, the exported model and the
// eval output. Every artefact equals the one the same commands make on
// local disk: the cache's rows and scores, the student's weights, the
// eval metrics.
func TestS3Pipeline(t *testing.T) {
	requireLib(t)
	s := s3test.Start(t)
	tmp := t.TempDir()
	data, err := os.ReadFile(mnistTestImages(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Put(t, "in/t10k-images-idx3-ubyte.gz", data)
	labels, err := os.ReadFile(strings.Replace(mnistTestImages(t), "images-idx3", "labels-idx1", 1))
	if err != nil {
		t.Fatal(err)
	}
	s.Put(t, "in/t10k-labels-idx1-ubyte.gz", labels)

	type where struct{ data, cache, ckpt, onnx, evalOut string }
	local := where{mnistTestImages(t), filepath.Join(tmp, "cache"), filepath.Join(tmp, "s.ckpt"), filepath.Join(tmp, "s.onnx"), filepath.Join(tmp, "e.json")}
	remote := where{s3test.Prefix("in/t10k-images-idx3-ubyte.gz"), s3test.Prefix("cache"), s3test.Prefix("s.ckpt"), s3test.Prefix("s.onnx"), s3test.Prefix("e.json")}
	results := map[string]eval.Result{}
	for name, w := range map[string]where{"local": local, "s3": remote} {
		args := append(extractArgs(t, w.cache), "--keep-input")
		for i, a := range args {
			if a == "--data" {
				args[i+1] = w.data
			}
		}
		mustDistill(t, args...)
		mustDistill(t, "train", "--cache", w.cache, "--out", w.ckpt, "--layers", "32", "--epochs", "1",
			"--batch", "64", "--threads", "1", "--feature", "hidden=1:0.5")
		mustDistill(t, "export", "--student", w.ckpt, "--out", w.onnx)
		mustDistill(t, "eval", "--model", w.onnx, "--data", w.cache, "--bench-time", "1ms", "--threads", "1", "--out", w.evalOut)
		raw, err := store.ReadFile(t.Context(), w.evalOut, 0)
		if err != nil {
			t.Fatal(err)
		}
		var r eval.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		results[name] = r
	}
	sameContents(t, local.cache, remote.cache)
	// The same weights (the provenance in the exported model names other
	// locations, so its bytes differ there).
	if got, want := ckptFiles(t, remote.ckpt)["model.safetensors"], dirFiles(t, local.ckpt)["model.safetensors"]; len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("the student trained from the s3 cache (%d bytes of weights) differs from the local one's (%d)", len(got), len(want))
	}
	if len(s.Object(t, "s.onnx")) == 0 {
		t.Error("no model exported to s3")
	}
	l, r := results["local"], results["s3"]
	if l.Accuracy == nil || r.Accuracy == nil || *l.Accuracy != *r.Accuracy || l.KL == nil || r.KL == nil || *l.KL != *r.KL {
		t.Errorf("eval on s3 differs from local: %s vs %s", mustJSON(t, r), mustJSON(t, l))
	}
	if *l.Accuracy < 0.5 {
		t.Errorf("accuracy %.3f: the pipeline did not train", *l.Accuracy)
	}
	if m, err := formats.ReadManifest(remote.cache); err != nil || m.Dataset.Path != remote.data {
		t.Errorf("the s3 cache records dataset %q, %v; want %s", m.Dataset.Path, err, remote.data)
	}
}

// TestS3BadLocations: for extract --out and for readers of a cache, an
// unknown scheme, a URL with no bucket, a missing bucket, missing
// credentials, a denied bucket and an endpoint that is down each give one
// line naming the cause, exit 1, and write nothing.
func TestS3BadLocations(t *testing.T) {
	requireLib(t)
	s := s3test.Start(t)
	down := "http://127.0.0.1:1"
	for _, tc := range []struct {
		name, out, want string
		env             []string
	}{
		{"unknown scheme", "hdfs://nn/cache", `unknown scheme "hdfs://"`, nil},
		{"no bucket", "s3:///cache", "no bucket", nil},
		{"missing bucket", "s3://no-such-bucket/cache", `bucket "no-such-bucket" does not exist`, nil},
		{"denied", "s3://" + s3test.DeniedBucket + "/cache", "access denied", nil},
		{"no credentials", s3test.Prefix("nocreds"), "no credentials found", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}},
		{"endpoint down", s3test.Prefix("down"), "cannot reach the storage endpoint at " + down, []string{"AWS_ENDPOINT_URL=" + down}},
	} {
		for _, cmdArgs := range [][]string{
			extractArgs(t, tc.out),
			{"train", "--cache", tc.out, "--out", filepath.Join(t.TempDir(), "s.ckpt"), "--layers", "8"},
			{"inspect", tc.out},
		} {
			cmd := distillCmd(cmdArgs...)
			cmd.Env = append(cmd.Env, tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			msg := strings.TrimSpace(stderr.String())
			if code := cmd.ProcessState.ExitCode(); code != exitFailure || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Errorf("%s: distill %s: exit %d (%v), stderr %q; want exit 1 and one line with %q", tc.name, cmdArgs[0], code, err, msg, tc.want)
			}
			if strings.Contains(msg, "distill-test-secret") {
				t.Errorf("%s: the secret key is printed", tc.name)
			}
		}
	}
	if keys := s.Keys(t, ""); len(keys) != 0 {
		t.Errorf("the failed commands wrote %v", keys)
	}
}

// TestGCSExtractTrain: extract writes its cache to gs:// (the fake GCS;
// STORAGE_EMULATOR_HOST, as for Google's own emulator) with the rows and
// values of a local run, killed after 1.5 s and resumed, and train reads
// it.
func TestGCSExtractTrain(t *testing.T) {
	requireLib(t)
	s3test.StartGCS(t)
	tmp := t.TempDir()
	ref := filepath.Join(tmp, "ref")
	mustDistill(t, extractArgs(t, ref)...)
	out := s3test.GCSPrefix("cache")
	if !runKilledAfter(t, 1500*time.Millisecond, extractArgs(t, out)...) {
		t.Log("the extraction finished before the kill")
	}
	mustDistill(t, append(extractArgs(t, out), "--resume")...)
	sameContents(t, ref, out)
	if got := mustDistill(t, "inspect", out, "--verify", "--rows", "0"); !strings.Contains(got, "verify: OK") {
		t.Errorf("inspect --verify of the gs:// cache:\n%s", got)
	}
	mustDistill(t, "train", "--cache", out, "--out", filepath.Join(tmp, "s.ckpt"), "--layers", "16", "--epochs", "1", "--threads", "1")
}
