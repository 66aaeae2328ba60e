package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
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

// runKilledAfter runs `distill args...` in a subprocess and sends it
// SIGKILL after delay. It reports whether the kill happened; a run that
// ends before the delay must have succeeded.
func runKilledAfter(t *testing.T, delay time.Duration, args ...string) (killed bool) {
	t.Helper()
	cmd := distillCmd(args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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

// runDistill runs `distill args...` in-process and returns its exit code
// and output.
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
