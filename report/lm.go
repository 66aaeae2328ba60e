package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/train"
)

// LMCheckpoint is a transformer checkpoint of a run: its training.json
// (architecture, options, per-epoch metrics).
type LMCheckpoint struct {
	Name string
	Path string // relative to the run directory
	Info train.LMCheckpointInfo
}

// loadLMCheckpoint reads a transformer checkpoint's training.json; the
// weights are not read.
func loadLMCheckpoint(dir string) (LMCheckpoint, error) {
	var c LMCheckpoint
	data, err := os.ReadFile(filepath.Join(dir, train.TrainingFile))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c.Info); err != nil {
		return c, fmt.Errorf("%s: %w", train.TrainingFile, err)
	}
	if c.Info.Student.Vocab == 0 {
		return c, fmt.Errorf("%s: no student architecture: not a distill transformer checkpoint", train.TrainingFile)
	}
	return c, nil
}

// Sample is one object of a distill generate --out JSONL file.
type Sample struct {
	Prompt string          `json:"prompt"`
	Text   string          `json:"text"`
	IDs    []int64         `json:"ids"`
	Seed   json.RawMessage `json:"seed"`
}

// SampleFile is a JSONL file of generated samples, named by its path
// without .jsonl; Samples are its first maxSamples.
type SampleFile struct {
	Name, Path string
	Samples    []Sample
}

// maxSamples bounds the samples read of each file (a transfer set may
// hold millions); the page shows up to shownPrompts prompts of them, and
// up to sampleChars characters of each text.
const (
	maxSamples   = 64
	shownPrompts = 4
	sampleChars  = 600
)

// loadSamples reads the first maxSamples objects of a JSONL file; ok is
// false when its first object lacks one of prompt, text, ids and seed (a
// JSONL file of something else). A line that is not such an object after
// that is an error.
func loadSamples(path string) (f SampleFile, ok bool, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return f, false, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 16<<20)
	line := 0
	for sc.Scan() && len(f.Samples) < maxSamples {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			if len(f.Samples) == 0 {
				return f, false, nil
			}
			return f, false, fmt.Errorf("line %d: %v", line, err)
		}
		for _, k := range []string{"prompt", "text", "ids", "seed"} {
			if _, has := fields[k]; !has {
				if len(f.Samples) == 0 {
					return f, false, nil
				}
				return f, false, fmt.Errorf("line %d: no %q field (distill generate --out writes prompt, text, ids and seed)", line, k)
			}
		}
		var s Sample
		if err := json.Unmarshal(b, &s); err != nil {
			return f, false, fmt.Errorf("line %d: %v", line, err)
		}
		f.Samples = append(f.Samples, s)
	}
	if err := sc.Err(); err != nil {
		return f, false, err
	}
	return f, len(f.Samples) > 0, nil
}

// lmModelRow is a row of the language models' size and speed table.
type lmModelRow struct {
	Name, Kind, Training, Data                    string
	Perplexity, NLL, Accuracy, Agreement, KL, ECE string
	Params, FileSize, Prefill                     string
	Decode                                        []string // tokens/s per decode batch of the table
}

// lmTable is the language models' size and speed table.
type lmTable struct {
	Batches  []int // decode batch sizes, the columns
	Rows     []lmModelRow
	Datasets string
}

// newLMTable builds the table of the language-model results among evals
// (nil without any).
func newLMTable(evals []*eval.Result) *lmTable {
	t := &lmTable{}
	var datasets []string
	for _, r := range evals {
		if r.LM == nil {
			continue
		}
		for _, d := range r.LM.Decode {
			if !slices.Contains(t.Batches, d.Batch) {
				t.Batches = append(t.Batches, d.Batch)
			}
		}
		if !slices.Contains(datasets, r.Data.Path) {
			datasets = append(datasets, r.Data.Path)
		}
	}
	slices.Sort(t.Batches)
	for _, r := range evals {
		if r.LM != nil {
			t.Rows = append(t.Rows, lmRow(r, t.Batches))
		}
	}
	if len(t.Rows) == 0 {
		return nil
	}
	t.Datasets = strings.Join(datasets, ", ")
	return t
}

// lmRow formats a language model's result for the table.
func lmRow(r *eval.Result, batches []int) lmModelRow {
	rate := func(v float64) string { return human.Digits(int64(math.Round(v))) }
	row := lmModelRow{Name: r.Name, Kind: r.LM.Kind, Training: "–", Data: r.Data.Path,
		Perplexity: num(r.Perplexity, "%.3f"), NLL: num(r.NLL, "%.4f"), Accuracy: pct(r.Accuracy), Agreement: pct(r.Agreement),
		KL: num(r.KL, "%.4f"), ECE: num(r.ECE, "%.4f"), Params: human.Digits(r.Model.Params), FileSize: human.Bytes(r.Model.FileBytes), Prefill: "–"}
	if r.Model.Training != nil {
		row.Training = r.Model.Training.Label()
	}
	if p := r.LM.Prefill; p != nil {
		row.Prefill = rate(p.TokensPerSec)
	}
	for _, b := range batches {
		v := "–"
		for _, d := range r.LM.Decode {
			if d.Batch == b {
				v = rate(d.TokensPerSec)
			}
		}
		row.Decode = append(row.Decode, v)
	}
	return row
}

// lmCkptRow is a row of the transformer checkpoints' table.
type lmCkptRow struct {
	Name, Method, Architecture, Epochs, Loss, Perplexity, Agreement, KL string
}

func lmCheckpointRow(c LMCheckpoint) lmCkptRow {
	i := c.Info
	row := lmCkptRow{Name: c.Name, Method: eval.TrainingOf(i.Training.Alpha, i.Training.Temperature, i.Epoch).Label(),
		Architecture: eval.DescribeTransformer(i.Student), Epochs: fmt.Sprint(len(i.Epochs)), Loss: "–", Perplexity: "–", Agreement: "–", KL: "–"}
	if n := len(i.Epochs); n > 0 {
		e := i.Epochs[n-1]
		row.Loss = fmt.Sprintf("%.4f", e.TrainLoss)
		if e.ValNLL != 0 {
			row.Perplexity = fmt.Sprintf("%.3f", math.Exp(e.ValNLL))
			row.Agreement = fmt.Sprintf("%.2f%%", 100*e.ValAgreement)
			row.KL = fmt.Sprintf("%.4f", e.ValKL)
		}
	}
	return row
}

// lmCurves returns the series of the transformer checkpoints and the
// per-epoch metrics drawn for them: train loss, held-out perplexity
// exp(val NLL) and agreement (NaN for an epoch without validation).
func lmCurves(ckpts []LMCheckpoint) ([]curveSeries, []curveMetric[train.LMEpoch]) {
	var series []curveSeries
	for _, c := range ckpts {
		i := c.Info
		s := curveSeries{label: c.Name + " (" + eval.TrainingOf(i.Training.Alpha, i.Training.Temperature, i.Epoch).Label() + ")",
			dashed: i.Training.Alpha == 0}
		for _, e := range i.Epochs {
			s.epochs = append(s.epochs, e.Epoch)
		}
		series = append(series, s)
	}
	val := func(f func(e train.LMEpoch) float64) func(e train.LMEpoch) float64 {
		return func(e train.LMEpoch) float64 {
			if e.ValNLL == 0 {
				return math.NaN()
			}
			return f(e)
		}
	}
	return series, []curveMetric[train.LMEpoch]{
		{"train loss", "mean loss per token", func(e train.LMEpoch) float64 { return e.TrainLoss }},
		{"held-out perplexity", "exp(NLL per token)", val(func(e train.LMEpoch) float64 { return math.Exp(e.ValNLL) })},
		{"held-out agreement with the teacher", "top-1 agreement per token", val(func(e train.LMEpoch) float64 { return e.ValAgreement })},
	}
}

// sampleRow is one prompt of the samples table: each file's first sample
// of that prompt ("–" when it has none).
type sampleRow struct {
	Prompt string
	Texts  []string
}

// samplesTable lays out up to shownPrompts prompts (in the order they
// first appear, file by file) against the sample files.
func samplesTable(files []SampleFile) []sampleRow {
	var prompts []string
	for _, f := range files {
		for _, s := range f.Samples {
			if len(prompts) < shownPrompts && !slices.Contains(prompts, s.Prompt) {
				prompts = append(prompts, s.Prompt)
			}
		}
	}
	var rows []sampleRow
	for _, p := range prompts {
		row := sampleRow{Prompt: p}
		if p == "" {
			row.Prompt = "(from BOS)"
		}
		for _, f := range files {
			text := "–"
			for _, s := range f.Samples {
				if s.Prompt == p {
					text = clip(s.Text, sampleChars)
					break
				}
			}
			row.Texts = append(row.Texts, text)
		}
		rows = append(rows, row)
	}
	return rows
}

// clip cuts s to at most n runes, marking a cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
