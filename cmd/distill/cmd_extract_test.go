package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

func mnistTestImages(t *testing.T) string {
	dir, err := dataset.MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "t10k-images-idx3-ubyte.gz")
}

// extractArgs extracts the project teacher over MNIST test in small parts.
func extractArgs(t *testing.T, out string) []string {
	return []string{"extract", "--teacher", "../../fixtures/teacher/mnist_cnn.onnx", "--data", mnistTestImages(t),
		"--out", out, "--scale", "1/255", "--hidden", "hidden", "--batch", "100", "--part-rows", "500", "--threads", "1"}
}

// cacheContents returns a cache's row ids, scores and hidden values.
func cacheContents(t *testing.T, dir string) (rows []int64, scores, hidden []float32) {
	t.Helper()
	c, err := formats.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rep, err := formats.Verify(c); err != nil || !rep.OK() {
		t.Fatalf("verify %s: %v %+v", dir, err, rep)
	}
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, b.Rows...)
		scores = append(scores, b.Logits...)
		hidden = append(hidden, b.Hidden["hidden"]...)
	}
	return rows, scores, hidden
}

func requireLib(t *testing.T) {
	t.Helper()
	if code, _, errOut := runDistill("tensors", "../../fixtures/tiny/mlp_logits.onnx"); code != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("onnxruntime is required in CI: %s", errOut)
		}
		t.Skipf("onnxruntime not available (run make setup): %s", errOut)
	}
}

func sameContents(t *testing.T, want, got string) {
	t.Helper()
	wr, ws, wh := cacheContents(t, want)
	gr, gs, gh := cacheContents(t, got)
	if len(wr) != 10000 || len(gr) != len(wr) || len(gs) != len(ws) || len(gh) != len(wh) {
		t.Fatalf("rows %d vs %d, scores %d vs %d, hidden %d vs %d", len(wr), len(gr), len(ws), len(gs), len(wh), len(gh))
	}
	for i := range wr {
		if wr[i] != gr[i] {
			t.Fatalf("row %d: id %d vs %d", i, wr[i], gr[i])
		}
	}
	for i := range ws {
		if ws[i] != gs[i] {
			t.Fatalf("score %d: %v vs %v (not bit-identical)", i, ws[i], gs[i])
		}
	}
	for i := range wh {
		if wh[i] != gh[i] {
			t.Fatalf("hidden %d: %v vs %v", i, wh[i], gh[i])
		}
	}
}

// TestExtractKillResume kills extraction with SIGKILL at several moments,
// resumes it each time, and checks that the final cache holds exactly the
// rows, scores and hidden states of an uninterrupted run.
func TestExtractKillResume(t *testing.T) {
	requireLib(t)
	tmp := t.TempDir()
	ref := filepath.Join(tmp, "ref")
	if out, err := distillCmd(extractArgs(t, ref)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	got := filepath.Join(tmp, "killed")
	kills := 0
	for _, delay := range []time.Duration{30 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond, 450 * time.Millisecond, 1100 * time.Millisecond} {
		args := extractArgs(t, got)
		if kills > 0 {
			args = append(args, "--resume")
		}
		if runKilledAfter(t, delay, args...) {
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("extraction finished before any kill; the test proves nothing")
	}
	// Finish.
	if out, err := distillCmd(append(extractArgs(t, got), "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(got)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left temporary file %s", e.Name())
		}
	}
	sameContents(t, ref, got)
	t.Logf("killed %d times", kills)
}

// TestExtractInterrupt sends SIGINT: the part in flight is finished and
// recorded in the attempt's journal, nothing is committed, and the resume
// command is printed; resuming completes and commits the cache.
func TestExtractInterrupt(t *testing.T) {
	requireLib(t)
	tmp := t.TempDir()
	ref := filepath.Join(tmp, "ref")
	if out, err := distillCmd(extractArgs(t, ref)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	got := filepath.Join(tmp, "int")
	cmd := distillCmd(extractArgs(t, got)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first part, then interrupt.
	waitForPart(t, got, cmd, &buf)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v (%v), want %d\n%s", cmd.ProcessState.ExitCode(), err, exitInterrupted, buf.String())
	}
	if !strings.Contains(buf.String(), "Resume with:") || !strings.Contains(buf.String(), "--resume") {
		t.Errorf("no resume command printed:\n%s", buf.String())
	}
	if _, err := formats.ReadManifest(got); !errors.Is(err, formats.ErrIncomplete) {
		t.Fatalf("the interrupted run committed: %v", err)
	}
	rows, err := attemptRows(got)
	if err != nil || rows == 0 || rows%500 != 0 || rows >= 10000 {
		t.Fatalf("journal after Ctrl-C: %d rows, %v", rows, err)
	}
	if out, err := distillCmd(append(extractArgs(t, got), "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	sameContents(t, ref, got)
}

// attemptRows returns the most rows an uncommitted attempt at the cache
// directory dir has recorded in its journal.
func attemptRows(dir string) (int64, error) {
	as, err := formats.Attempts(dir)
	var rows int64
	for _, a := range as {
		rows = max(rows, a.Manifest.Rows)
	}
	return rows, err
}

// waitForPart waits until the extraction cmd (output in buf) has recorded
// a part in its journal at dir, killing it and failing after 60 s.
func waitForPart(t *testing.T, dir string, cmd *exec.Cmd, buf *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if rows, _ := attemptRows(dir); rows > 0 {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no part after 60 s:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
