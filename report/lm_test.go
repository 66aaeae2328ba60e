package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/report"
	"github.com/distill-ml/distill/train"
)

// lmRun makes a language-model run directory without the command line:
// two transformer checkpoints trained by TrainLM (KD and hard labels, 2
// epochs with validation), a teacher and a student evaluated by RunLM
// (a fake bigram model) into eval/NAME.json, and the samples of two
// models as distill generate --out writes them, beside a JSONL file of
// something else.
func lmRun(t *testing.T) (run string, evals []*eval.Result) {
	t.Helper()
	tmp := t.TempDir()
	run = filepath.Join(tmp, "run")
	cache := fixtures.WriteTokenCache(t, filepath.Join(tmp, "cache"), 8, 8, 12, false)
	c, err := formats.Open(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, ck := range []struct {
		name  string
		alpha float64
	}{{"lm-kd", 1}, {"lm-hard", 0}} {
		o := &train.Options{Epochs: 2, Alpha: ck.alpha, Threads: 1, Out: filepath.Join(run, ck.name), Val: c, BatchSize: 4}
		if _, err := train.TrainLM(context.Background(), train.TransformerConfig{Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 8}, c, o, nil); err != nil {
			t.Fatal(err)
		}
	}
	data := fixtures.WriteTokenData(t, filepath.Join(tmp, "tokens.parquet"), 6, 10, 7)
	for i, name := range []string{"teacher", "student"} {
		d, err := eval.OpenLMData(data, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		m := fixtures.NewBigram(7)
		res, err := eval.RunLM(context.Background(), m, d, &eval.LMOptions{Options: eval.Options{Name: name, BenchTime: time.Millisecond},
			DecodePrompt: 2, DecodeSteps: 3, DecodeBatch: []int{1, 4 + 12*i}})
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			res.Model.Training = eval.TrainingOf(0.9, 1, 3)
		}
		writeJSON(t, filepath.Join(run, "eval", name+".json"), res)
		evals = append(evals, res)
	}
	writeSamples := func(name string, texts ...string) {
		var b bytes.Buffer
		for i, s := range texts {
			js, _ := json.Marshal(map[string]any{"prompt": []string{"", "Once upon"}[i%2], "text": s, "ids": []int{1, 2, 3}, "seed": i})
			b.Write(append(js, '\n'))
		}
		if err := os.WriteFile(filepath.Join(run, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeSamples("teacher.jsonl", "Lily <b>played</b> in the park.", "Once upon a time there was a dog.")
	writeSamples("student.jsonl", strings.Repeat("la ", 400))
	os.WriteFile(filepath.Join(run, "other.jsonl"), []byte(`{"loss": 1}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(run, "broken.jsonl"), []byte(`{"prompt": "", "text": "a", "ids": [], "seed": 1}`+"\nnot json\n"), 0o644)
	return run, evals
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteLanguageModels(t *testing.T) {
	run, evals := lmRun(t)
	r, err := report.LoadRun(run, filepath.Join(run, "report"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range r.Samples {
		names = append(names, f.Name)
	}
	if len(r.LMCkpts) != 2 || len(r.Ckpts) != 0 || len(r.Evals) != 2 || strings.Join(names, " ") != "student teacher" ||
		len(r.Warnings) != 1 || !strings.HasPrefix(r.Warnings[0], "broken.jsonl: line 2") {
		t.Fatalf("%d LM checkpoints, %d MLP, %d evals, samples %q, warnings %q", len(r.LMCkpts), len(r.Ckpts), len(r.Evals), names, r.Warnings)
	}
	index, _, err := report.Write(run, nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	want := []string{"Language models: size and speed", "Language-model training", "Generated samples",
		"decode tokens/s<br>batch 1", "decode tokens/s<br>batch 4", "decode tokens/s<br>batch 16",
		"<td>lm-kd</td>", "<td>lm-hard</td>", "hard labels", "transformer dim 8, 1 layers, 2 heads (1 KV)",
		`<th class="l">teacher</th>`, `<th class="l">student</th>`, "(from BOS)", "Once upon", "Lily &lt;b&gt;played&lt;/b&gt; in the park.", "…",
		"Skipped: broken.jsonl"}
	for _, e := range evals {
		want = append(want, fmt.Sprintf("<td>%.3f</td>", *e.Perplexity), fmt.Sprintf("<td>%.4f</td>", *e.NLL),
			human.Digits(int64(math.Round(e.LM.Prefill.TokensPerSec))), human.Digits(int64(math.Round(e.LM.Decode[1].TokensPerSec))))
	}
	for _, c := range r.LMCkpts {
		last := c.Info.Epochs[len(c.Info.Epochs)-1]
		want = append(want, fmt.Sprintf("<td>%.3f</td>", math.Exp(last.ValNLL)), fmt.Sprintf("<td>%.2f%%</td>", 100*last.ValAgreement))
	}
	for _, w := range want {
		if !strings.Contains(html, w) {
			t.Errorf("index.html lacks %q", w)
		}
	}
	for _, bad := range []string{`<table id="models">`, "<b>played", strings.Repeat("la ", 201), "other"} {
		if strings.Contains(html, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	out := filepath.Dir(index)
	for _, img := range []string{"lm-curves.png", "reliability-teacher.png", "reliability-student.png"} {
		if !strings.Contains(html, `<img src="`+img+`"`) {
			t.Errorf("index.html shows no %s", img)
		}
		data, err := os.ReadFile(filepath.Join(out, img))
		if err != nil {
			t.Error(err)
			continue
		}
		if cfg, err := png.DecodeConfig(bytes.NewReader(data)); err != nil || cfg.Width < 300 {
			t.Errorf("%s: %v, %+v", img, err, cfg)
		}
	}
	fixtures.CheckImagesInBrowser(t, out, 3)

	var b strings.Builder
	if err := report.WriteTable(&b, run); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "perplexity") || !strings.Contains(lines[0], "decode tok/s b=16") {
		t.Fatalf("--table: want the language models' header and 2 rows:\n%s", b.String())
	}
	for i, e := range []*eval.Result{evals[0], evals[1]} {
		f := strings.Fields(lines[i+1])
		if f[0] != e.Name || !strings.Contains(lines[i+1], fmt.Sprintf("%.3f", *e.Perplexity)) {
			t.Errorf("--table row %d = %q, want %s with perplexity %.3f", i+1, lines[i+1], e.Name, *e.Perplexity)
		}
	}
	if !strings.Contains(lines[2], "KD α=0.9") || !strings.Contains(lines[1], "–") {
		t.Errorf("--table: the teacher (no training) first, then the student:\n%s", b.String())
	}
}

// A run with both kinds of models prints both tables.
func TestWriteTableBoth(t *testing.T) {
	run := testRun(t)
	lm, _ := lmRun(t)
	for _, n := range []string{"teacher", "student"} {
		data, err := os.ReadFile(filepath.Join(lm, "eval", n+".json"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(run, "eval", "lm-"+n+".json"), data, 0o644)
	}
	var b strings.Builder
	if err := report.WriteTable(&b, run); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSpace(b.String()), "\n\n")
	if len(parts) != 2 || !strings.Contains(parts[0], "ms/sample b=1") || strings.Count(parts[0], "\n") != 2 ||
		!strings.Contains(parts[1], "perplexity") || strings.Count(parts[1], "\n") != 2 {
		t.Errorf("want the classifiers' table and the language models', 2 rows each:\n%s", b.String())
	}
}
