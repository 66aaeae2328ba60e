package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/distill-ml/distill/fixtures"
)

// reportTestRun makes a run directory: a distilled and a hard-label
// checkpoint with three epochs of metrics each, both evaluated into
// eval/*.json, the second with --report. It returns the directory.
func reportTestRun(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	run := filepath.Join(tmp, "run")
	rows, x, labels, logits := fixtures.ClassData(90, 4)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	kd := fixtures.WriteStudent(t, filepath.Join(run, "kd.ckpt"), 0.9, fixtures.EpochMetrics(2.5, 0.7))
	base := fixtures.WriteStudent(t, filepath.Join(run, "baseline.ckpt"), 0, fixtures.EpochMetrics(0.9, 0.68))
	for _, c := range []struct {
		ckpt, name string
		report     bool
	}{{kd, "kd", false}, {base, "baseline", true}} {
		args := []string{"eval", "--model", c.ckpt, "--data", data, "--bench-time", "1ms", "--batch", "32", "--threads", "1",
			"--out", filepath.Join(run, "eval", c.name+".json")}
		if c.report {
			args = append(args, "--report")
		}
		code, out, errOut := runDistill(args...)
		if code != 0 {
			t.Fatalf("distill %q: exit %d\n%s", args, code, errOut)
		}
		if c.report && !strings.Contains(out, "report: "+filepath.Join(run, "report", "index.html")) {
			t.Errorf("eval --report printed:\n%s", out)
		}
	}
	return run
}

var imgSrc = regexp.MustCompile(`<img src="([^"]*)"`)

// TestReport runs distill report on a run directory made by distill eval
// --out: the page, its charts and Chromium's check are report's tests
// (report.TestWrite); here the command's wiring: the default report
// directory, a warning on stderr, the path printed.
func TestReport(t *testing.T) {
	run := reportTestRun(t)
	dir := filepath.Join(run, "report")
	os.WriteFile(filepath.Join(run, "eval", "notes.json"), []byte(`{"x": 1}`), 0o644)
	code, out, errOut := runDistill("report", run)
	if code != 0 || !strings.Contains(errOut, "report: warning: ") || !strings.Contains(errOut, "notes.json: not a distill eval output") {
		t.Fatalf("distill report: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "report: "+filepath.Join(dir, "index.html")) {
		t.Errorf("report printed %q", out)
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{"<td>kd</td>", "<td>baseline</td>", "KD α=0.9 T=3", "hard labels", "distill " + version} {
		if !strings.Contains(html, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	if n := len(imgSrc.FindAllStringSubmatch(html, -1)); n != 6 {
		t.Errorf("%d images, want 6", n)
	}
	// --out elsewhere.
	other := filepath.Join(t.TempDir(), "r")
	if code, out, errOut := runDistill("report", run, "--out", other); code != 0 || !strings.Contains(out, filepath.Join(other, "index.html")) {
		t.Errorf("--out: exit %d\n%s%s", code, out, errOut)
	}
}

func TestReportTable(t *testing.T) {
	run := reportTestRun(t)
	code, out, errOut := runDistill("report", run, "--table")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "accuracy") || !strings.Contains(lines[0], "ms/sample b=1") {
		t.Fatalf("want a header, 2 model rows and the report line:\n%s", out)
	}
	for i, want := range []string{"baseline", "kd"} {
		if f := strings.Fields(lines[i+1]); len(f) < 9 || f[0] != want {
			t.Errorf("row %d = %q, want model %s and 9+ columns", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[1], "hard labels") || !strings.Contains(lines[2], "KD α=0.9") {
		t.Errorf("training column wrong:\n%s", out)
	}
}

func TestReportErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report"}, exitUsage, "want one run directory"},
		{[]string{"report", empty, "extra"}, exitUsage, "want one run directory"},
		{[]string{"report", empty}, exitFailure, "no *.ckpt checkpoints, no transformer checkpoints (training.json), no eval/*.json"},
		{[]string{"report", filepath.Join(empty, "missing")}, exitFailure, "no such file"},
	} {
		code, _, stderr := runDistill(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("distill %q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
}
