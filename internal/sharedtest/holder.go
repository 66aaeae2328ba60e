package sharedtest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"
)

// Holder is a helper process: one test of the running test binary that
// takes something (a lock, a cache open for writing, a training run) and
// holds it until its stdin closes, so that a test can check what another
// process sees meanwhile.
type Holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// Hold starts the test binary again running only the test named test,
// with env ("NAME=value") added to the environment, and waits until the
// helper prints the line ready. The helper is killed when the test ends
// if Stop has not ended it first.
func Hold(t testing.TB, test, ready string, env ...string) *Holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &Holder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { h.stdin.Close(); h.cmd.Process.Kill(); h.cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != ready+"\n" {
		t.Fatalf("helper %s: %q, %v", test, line, err)
	}
	return h
}

// Stop closes the helper's stdin, so that it lets go, and waits for it to
// exit, failing the test if it did not exit cleanly.
func (h *Holder) Stop(t testing.TB) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// Kill ends the helper with SIGKILL, as a crash would, without letting it
// release anything, and waits for it to be gone.
func (h *Holder) Kill() {
	h.cmd.Process.Kill()
	h.cmd.Wait()
}
