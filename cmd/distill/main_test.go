package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distill-ml/distill/train"
)

// TestMain lets tests run the distill binary as a subprocess: the test
// binary re-executed with DISTILL_TEST_MAIN=1 behaves as `distill`.
func TestMain(m *testing.M) {
	if os.Getenv("DISTILL_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// distillCmd returns a command running `distill args...` in a subprocess.
func distillCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "DISTILL_TEST_MAIN=1")
	return cmd
}

// startDistill starts `distill args...` in a subprocess writing its
// output to buf.
func startDistill(t *testing.T, args ...string) (cmd *exec.Cmd, buf *bytes.Buffer) {
	t.Helper()
	cmd, buf = distillCmd(args...), new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, buf
}

// runKilledAfter runs `distill args...` in a subprocess and sends it
// SIGKILL after delay. It reports whether the kill happened; a run that
// ends before the delay must have succeeded.
func runKilledAfter(t *testing.T, delay time.Duration, args ...string) (killed bool) {
	t.Helper()
	cmd, buf := startDistill(t, args...)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run finished with %v before the kill:\n%s", err, buf.String())
		}
		return false
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// killResume runs `distill args(out)...` (a command with --resume)
// uninterrupted into tmp/ref, then into tmp/killed killed with SIGKILL at
// several fractions of that run's time, rerunning the same command each
// time, and finally to the end; it checks that every checkpoint a kill
// leaves loads (epoch: its completed epochs), that the final files are
// byte-identical to the uninterrupted run's, and that nothing is left
// beside them.
func killResume(t *testing.T, tmp string, args func(out string) []string, files []string, epoch func(dir string) (int, error)) {
	t.Helper()
	var kills int
	var epochs []int
	ref := filepath.Join(tmp, "ref")
	start := time.Now()
	if out, err := distillCmd(args(ref)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	full := time.Since(start)
	got := filepath.Join(tmp, "killed")
	for _, frac := range []float64{0.05, 0.3, 0.22, 0.45, 0.17, 0.6} {
		if runKilledAfter(t, time.Duration(frac*float64(full)), args(got)...) {
			kills++
		}
		if train.Exists(got) {
			e, err := epoch(got)
			if err != nil {
				t.Fatalf("checkpoint after kill %d unloadable: %v", kills, err)
			}
			epochs = append(epochs, e)
		}
	}
	if out, err := distillCmd(args(got)...).CombinedOutput(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, out)
	}
	if kills == 0 {
		t.Fatal("no run was killed; the test proves nothing")
	}
	for _, f := range files {
		a, _ := os.ReadFile(filepath.Join(ref, f))
		b, _ := os.ReadFile(filepath.Join(got, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted run's", f)
		}
	}
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left %s", e.Name())
		}
	}
	t.Logf("uninterrupted run %v; killed %d times, at checkpoint epochs %v", full.Round(time.Millisecond), kills, epochs)
}

// interruptAfterCheckpoint runs `distill args...` in a subprocess until
// the checkpoint out exists, sends it SIGINT (Ctrl-C) and checks that it
// exits 130 printing the command that resumes it.
func interruptAfterCheckpoint(t *testing.T, out string, args ...string) {
	t.Helper()
	cmd, buf := startDistill(t, args...)
	deadline := time.Now().Add(60 * time.Second)
	for !train.Exists(out) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no checkpoint after 60 s:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || !strings.Contains(buf.String(), "Resume with:") || !strings.Contains(buf.String(), "--resume") {
		t.Fatalf("exit %d, want %d with a resume command:\n%s", code, exitInterrupted, buf.String())
	}
}

// runDistill runs `distill args...` in-process and returns its exit code
// and output.
// mustDistill runs distill with args and returns its stdout; a non-zero
// exit fails the test with its stderr.
func mustDistill(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runDistill(args...)
	if code != 0 {
		t.Fatalf("distill %q: exit %d\n%s", args, code, errOut)
	}
	return out
}

func runDistill(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestHelpEveryCommand(t *testing.T) {
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runDistill(name, "--help")
			if code != 0 || !strings.Contains(out, "Usage: distill "+name) {
				t.Fatalf("distill %s --help: exit %d\nstdout: %s\nstderr: %s", name, code, out, errOut)
			}
			if errOut != "" || strings.Count(out, "Usage: distill") != 1 {
				t.Errorf("distill %s --help must print the help once, to stdout; stderr: %q", name, errOut)
			}
		})
	}
	if code, out, _ := runDistill("--help"); code != 0 || !strings.Contains(out, "Commands:") {
		t.Fatalf("distill --help: exit %d: %s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"no-such-command"},
		{"version", "extra"},
		{"extract", "--no-such-flag"},
		{"extract", "--teacher", "t.onnx"},
		{"extract", "--teacher", "t.onnx", "--data", "d", "--out", "o", "--shard", "3/3"},
		{"extract", "--teacher", "t.onnx", "--data", "d", "--out", "o", "--scale", "1/0"},
		{"tensors"},
	} {
		if code, _, _ := runDistill(args...); code != exitUsage {
			t.Errorf("distill %q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestDocListsCommands checks that doc.go's usage names every command.
func TestDocListsCommands(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for name := range commands {
		if !strings.Contains(string(doc), "//	distill "+name+" ") && !strings.Contains(string(doc), "//	distill "+name+"\n") {
			t.Errorf("doc.go's usage lacks distill %s", name)
		}
	}
}
