package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/report"
	"github.com/distill-ml/distill/train"
)

// testRun makes a run directory without the command line: a distilled and
// a hard-label checkpoint with three epochs of metrics each, both
// evaluated by eval.Run into eval/NAME.json. It returns the directory.
func testRun(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	run := filepath.Join(tmp, "run")
	rows, x, labels, logits := fixtures.ClassData(90, 4)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	for _, c := range []struct {
		name  string
		alpha float64
		ms    []train.EpochMetrics
	}{{"kd", 0.9, fixtures.EpochMetrics(2.5, 0.7)}, {"baseline", 0, fixtures.EpochMetrics(0.9, 0.68)}} {
		ckpt := fixtures.WriteStudent(t, filepath.Join(run, c.name+".ckpt"), c.alpha, c.ms)
		m, err := eval.OpenCheckpoint(ckpt, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, err := eval.OpenData(data, nil, formats.Preprocess{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := eval.Run(context.Background(), m, d, nil, &eval.Options{Name: c.name, Batch: 32, BenchTime: time.Millisecond})
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(run, "eval"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(run, "eval", c.name+".json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return run
}

var imgSrc = regexp.MustCompile(`<img src="([^"]*)"`)

func TestWrite(t *testing.T) {
	run := testRun(t)
	out := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// A stale chart of an earlier report is removed, other files are
	// kept; a stray JSON is skipped with a warning.
	os.WriteFile(filepath.Join(out, "confusion-old.png"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(out, "notes.png"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(run, "eval", "notes.json"), []byte(`{"x": 1}`), 0o644)
	index, warnings, err := report.Write(run, &report.Options{Out: out, ToolVersion: "9.9-test"})
	if err != nil {
		t.Fatal(err)
	}
	if index != filepath.Join(out, "index.html") || len(warnings) != 1 || !strings.Contains(warnings[0], "notes.json: not a distill eval output") {
		t.Fatalf("index %s, warnings %q", index, warnings)
	}
	page, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{"<td>kd</td>", "<td>baseline</td>", "KD α=0.9 T=3", "hard labels", "Size and speed",
		"Training", "Calibration", "Confusion matrices", "Per-class accuracy", "mlp 4-6-3 relu", "distill 9.9-test",
		"Skipped: " + filepath.Join(run, "eval", "notes.json")} {
		if !strings.Contains(html, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<link", "http://", "https://", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	var srcs []string
	for _, m := range imgSrc.FindAllStringSubmatch(html, -1) {
		srcs = append(srcs, m[1])
	}
	want := []string{"curves.png", "reliability-baseline.png", "reliability-kd.png", "confusion-baseline.png", "confusion-kd.png", "per-class.png"}
	if strings.Join(srcs, " ") != strings.Join(want, " ") {
		t.Errorf("images %q, want %q", srcs, want)
	}
	for _, s := range srcs {
		data, err := os.ReadFile(filepath.Join(out, s))
		if err != nil {
			t.Error(err)
			continue
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width < 300 || cfg.Height < 300 {
			t.Errorf("%s: %v, %dx%d", s, err, cfg.Width, cfg.Height)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "confusion-old.png")); !os.IsNotExist(err) {
		t.Errorf("stale chart kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "notes.png")); err != nil {
		t.Errorf("a file that is not one of the report's charts was removed: %v", err)
	}
	fixtures.CheckImagesInBrowser(t, out, len(want))
}

func TestLoad(t *testing.T) {
	run := testRun(t)
	// A checkpoint in a subdirectory is found and named by its path; a
	// broken one is a warning; the report directory is skipped.
	nested := fixtures.WriteStudent(t, filepath.Join(run, "sweep", "lr3.ckpt"), 0.5, nil)
	os.MkdirAll(filepath.Join(run, "broken.ckpt"), 0o755)
	os.MkdirAll(filepath.Join(run, "report", "old.ckpt"), 0o755)
	ckpts, evals, warnings, err := report.Load(run, filepath.Join(run, "report"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range ckpts {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "baseline kd sweep/lr3" || len(evals) != 2 || evals[0].Name != "baseline" || len(ckpts[0].Metrics) != 3 {
		t.Errorf("checkpoints %q, %d evals", names, len(evals))
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "broken.ckpt: ") {
		t.Errorf("warnings %q", warnings)
	}
	if ckpts[2].Path != filepath.Join("sweep", "lr3.ckpt") || nested == "" {
		t.Errorf("nested path %q", ckpts[2].Path)
	}
}

func TestWriteTable(t *testing.T) {
	run := testRun(t)
	var b strings.Builder
	if err := report.WriteTable(&b, run); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "accuracy") || !strings.Contains(lines[0], "ms/sample b=1") {
		t.Fatalf("want a header and 2 model rows:\n%s", b.String())
	}
	for i, want := range []string{"baseline", "kd"} {
		if f := strings.Fields(lines[i+1]); len(f) < 9 || f[0] != want {
			t.Errorf("row %d = %q, want model %s and 9+ columns", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[1], "hard labels") || !strings.Contains(lines[2], "KD α=0.9") {
		t.Errorf("training column wrong:\n%s", b.String())
	}
}

func TestWriteErrors(t *testing.T) {
	empty := t.TempDir()
	file := filepath.Join(empty, "f")
	os.WriteFile(file, nil, 0o644)
	for dir, want := range map[string]string{
		empty:                           "no *.ckpt checkpoints, no transformer checkpoints (training.json), no eval/*.json",
		filepath.Join(empty, "missing"): "no such file",
		file:                            "is not a directory",
	} {
		if _, _, err := report.Write(dir, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Write(%s): %v, want %q", dir, err, want)
		}
	}
}
