package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/internal/atomicfile"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/train"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// Checkpoint is one checkpoint of a run.
type Checkpoint struct {
	Name    string
	Path    string // relative to the run directory
	Info    train.CheckpointInfo
	Metrics []train.EpochMetrics
}

// Load finds the checkpoints (*.ckpt directories at any depth, skipping
// dot directories and skip) and eval outputs (eval/*.json) of runDir.
// Files that do not parse are reported in warnings and left out. LoadRun
// finds language-model runs too.
func Load(runDir, skip string) (ckpts []Checkpoint, evals []*eval.Result, warnings []string, err error) {
	r, err := LoadRun(runDir, skip)
	if err != nil {
		return nil, nil, nil, err
	}
	return r.Ckpts, r.Evals, r.Warnings, nil
}

// Run is what a run directory holds (LoadRun).
type Run struct {
	Ckpts    []Checkpoint   // *.ckpt directories of distill train (MLP students)
	LMCkpts  []LMCheckpoint // directories holding training.json (transformer students)
	Evals    []*eval.Result // eval/*.json
	Samples  []SampleFile   // *.jsonl files of distill generate --out
	Warnings []string       // files that did not parse, left out
}

// LoadRun finds in runDir, at any depth (skipping dot directories and
// skip): MLP checkpoints (*.ckpt directories), transformer checkpoints
// (directories holding training.json, whatever their name), the eval
// outputs (eval/*.json) and generated samples (*.jsonl files whose
// objects have the fields prompt, text, ids and seed; other JSONL files
// are not samples and are passed over). Files that do not parse are
// reported in Warnings and left out. It reads no weights.
func LoadRun(runDir, skip string) (*Run, error) {
	st, err := os.Stat(runDir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", runDir)
	}
	r := &Run{}
	err = filepath.WalkDir(runDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == runDir {
			return nil
		}
		rel, _ := filepath.Rel(runDir, path)
		if !d.IsDir() {
			if strings.HasSuffix(d.Name(), ".jsonl") {
				f, ok, err := loadSamples(path)
				switch {
				case err != nil:
					r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %v", rel, err))
				case ok:
					f.Path, f.Name = rel, strings.TrimSuffix(filepath.ToSlash(rel), ".jsonl")
					r.Samples = append(r.Samples, f)
				}
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || filepath.Clean(path) == filepath.Clean(skip) {
			return filepath.SkipDir
		}
		if _, err := os.Stat(filepath.Join(path, train.TrainingFile)); err == nil {
			c, err := loadLMCheckpoint(path)
			if err != nil {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %v", rel, err))
				return filepath.SkipDir
			}
			c.Path, c.Name = rel, strings.TrimSuffix(filepath.ToSlash(rel), ".ckpt")
			r.LMCkpts = append(r.LMCkpts, c)
			return filepath.SkipDir
		}
		if !strings.HasSuffix(d.Name(), ".ckpt") {
			return nil
		}
		c, err := loadCheckpoint(path)
		if err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %v", rel, err))
			return filepath.SkipDir
		}
		c.Path = rel
		c.Name = strings.TrimSuffix(filepath.ToSlash(rel), ".ckpt")
		r.Ckpts = append(r.Ckpts, c)
		return filepath.SkipDir
	})
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(runDir, "eval", "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	for _, f := range files {
		var res eval.Result
		data, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(data, &res)
		}
		if err == nil && (res.Name == "" || res.Model.Kind == "") {
			err = errors.New("not a distill eval output (no name or model)")
		}
		if err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		r.Evals = append(r.Evals, &res)
	}
	return r, nil
}

// loadCheckpoint reads a checkpoint's config.json, and its metrics.jsonl
// when config.json lists no metrics. The weights are not read.
func loadCheckpoint(dir string) (Checkpoint, error) {
	var c Checkpoint
	data, err := os.ReadFile(filepath.Join(dir, train.ConfigFile))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c.Info); err != nil {
		return c, fmt.Errorf("%s: %w", train.ConfigFile, err)
	}
	c.Metrics = c.Info.Metrics
	if len(c.Metrics) == 0 {
		f, err := os.Open(filepath.Join(dir, train.MetricsFile))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var m train.EpochMetrics
				if len(bytes.TrimSpace(sc.Bytes())) == 0 {
					continue
				}
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					return c, fmt.Errorf("%s: %w", train.MetricsFile, err)
				}
				c.Metrics = append(c.Metrics, m)
			}
			if err := sc.Err(); err != nil {
				return c, fmt.Errorf("%s: %w", train.MetricsFile, err)
			}
		}
	}
	return c, nil
}

// reportImage is one chart on the page: a PNG in the report directory.
type reportImage struct {
	File, Alt, Caption string
	Width              int // CSS pixels
}

type reportModelRow struct {
	Name, Kind, Training, Data           string
	Accuracy, Errors, Agreement, KL, ECE string
	Params, FileSize                     string
	LatencyBatch1, LatencyLarge, Rate    string
}

type CheckpointRow struct {
	Name, Method, Architecture, Epochs, Loss, Accuracy, Agreement, ECE string
}

type reportPage struct {
	Title, RunDir, Tool string
	Warnings            []string
	Models              []reportModelRow
	LargeBatch          string // the eval outputs' large batch: "256", or "256, 64"
	Datasets            string // the data they were evaluated on
	Ckpts               []CheckpointRow
	Curves              []reportImage
	Reliability         []reportImage
	Confusion           []reportImage
	PerClass            *reportImage
	// Language models.
	LM          *lmTable
	LMCkpts     []lmCkptRow
	LMCurves    []reportImage
	SampleFiles []string
	Samples     []sampleRow
}

// curveMetric is one metric drawn per epoch: its chart title, y label
// and value of an epoch's record E (NaN when the epoch lacks it).
type curveMetric[E any] struct {
	title, ylabel string
	value         func(E) float64
}

// curvesImage draws every metric per epoch for every series (epochs[i]
// the records of series i), one chart each, side by side with one legend,
// saved as base.png by save; nil when no series has any value.
func curvesImage[E any](save func(base string, w, h float64, lg *plot.Legend, labels []string, plots ...*plot.Plot) (reportImage, error),
	base string, series []curveSeries, epochs [][]E, metrics []curveMetric[E]) (*reportImage, error) {
	var plots []*plot.Plot
	var titles, labels []string
	for _, s := range series {
		labels = append(labels, s.label)
	}
	for _, m := range metrics {
		for i := range series {
			series[i].values = series[i].values[:0]
			for _, e := range epochs[i] {
				series[i].values = append(series[i].values, m.value(e))
			}
		}
		p, err := curveChart(m.title, m.ylabel, series)
		if err != nil {
			return nil, err
		}
		if p != nil { // nil: no checkpoint has this metric (no --val)
			plots, titles = append(plots, p), append(titles, m.title)
		}
	}
	if len(plots) == 0 {
		return nil, nil
	}
	lg, err := curveLegend(series)
	if err != nil {
		return nil, err
	}
	img, err := save(base, curveW, curveH, &lg, labels, plots...)
	if err != nil {
		return nil, err
	}
	img.Alt = strings.Join(titles, ", ") + " per epoch"
	return &img, nil
}

// Chart sizes in inches, without legends (the PNGs have chartDPI pixels
// per inch; the page shows them at 96 CSS pixels per inch).
const (
	curveW, curveH       = 4.2, 3.2
	squareW, squareH     = 4.2, 4.0
	perClassW, perClassH = 9.0, 3.6
)

// Options are the settings of Write. The zero value is usable.
type Options struct {
	// Out is the report directory; "" = runDir/report.
	Out string
	// ToolVersion is named on the page.
	ToolVersion string
	// Location is the run directory as the page names it, when runDir is
	// a local copy of it (a run on object storage); "" = runDir.
	Location string
}

// Write writes the report of runDir: index.html and its PNG charts in the
// report directory, each file atomically, and removes charts of an earlier
// report there that this one did not rewrite. It returns the path of
// index.html and the warnings of Load (also shown on the page).
func Write(runDir string, o *Options) (index string, warnings []string, err error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	out := opts.Out
	if out == "" {
		out = filepath.Join(runDir, "report")
	}
	run, err := LoadRun(runDir, out)
	if err != nil {
		return "", nil, err
	}
	index, err = write(runDir, out, opts.ToolVersion, opts.Location, run)
	return index, run.Warnings, err
}

// write renders the page of run into out; location, if set, is the run
// directory as the page names it (Options.Location).
func write(runDir, out, tool, location string, run *Run) (string, error) {
	ckpts, evals, warnings := run.Ckpts, run.Evals, run.Warnings
	if len(ckpts) == 0 && len(evals) == 0 && len(run.LMCkpts) == 0 && len(run.Samples) == 0 {
		return "", fmt.Errorf("%s holds no *.ckpt checkpoints, no transformer checkpoints (training.json), no eval/*.json eval outputs (distill eval --out %s) and no generated samples (*.jsonl)",
			runDir, filepath.Join(runDir, "eval", "NAME.json"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	abs, _ := filepath.Abs(runDir)
	title, runName := filepath.Base(abs), runDir
	if location != "" {
		title, runName = path.Base(location), location
	}
	page := reportPage{Title: "distill report: " + title, RunDir: runName, Tool: tool, Warnings: warnings}
	slugs := map[string]bool{}
	// save writes plots side by side (w×h inches each) with a legend, as
	// a PNG in out named after base, and returns it as a page image.
	save := func(base string, w, h float64, lg *plot.Legend, labels []string, plots ...*plot.Plot) (reportImage, error) {
		name := uniqueSlug(base, slugs) + ".png"
		data, width, err := figurePNG(plots, vg.Length(w)*vg.Inch, vg.Length(h)*vg.Inch, lg, labels)
		if err != nil {
			return reportImage{}, err
		}
		return reportImage{File: name, Width: int(math.Round(float64(width/vg.Inch) * 96))}, atomicfile.WriteFile(filepath.Join(out, name), data, 0o644)
	}

	var batches, datasets []string
	for _, r := range evals {
		if r.LM != nil {
			continue // the language models' table
		}
		page.Models = append(page.Models, modelRow(r))
		for _, l := range r.Latency {
			if b := fmt.Sprint(l.Batch); l.Batch > 1 && !slices.Contains(batches, b) {
				batches = append(batches, b)
			}
		}
		if !slices.Contains(datasets, r.Data.Path) {
			datasets = append(datasets, r.Data.Path)
		}
	}
	page.LargeBatch, page.Datasets = strings.Join(batches, ", "), strings.Join(datasets, ", ")

	if len(ckpts) > 0 {
		for _, c := range ckpts {
			page.Ckpts = append(page.Ckpts, ckptRow(c))
		}
		var series []curveSeries
		var epochs [][]train.EpochMetrics
		for _, c := range ckpts {
			s := curveSeries{label: c.Name + " (" + eval.TrainingOf(c.Info.Training.Alpha, c.Info.Training.Temperature, c.Info.Epoch).Label() + ")",
				dashed: c.Info.Training.Alpha == 0}
			for _, e := range c.Metrics {
				s.epochs = append(s.epochs, e.Epoch)
			}
			series, epochs = append(series, s), append(epochs, c.Metrics)
		}
		img, err := curvesImage(save, "curves", series, epochs, []curveMetric[train.EpochMetrics]{
			{"train loss", "mean loss per row", func(e train.EpochMetrics) float64 { return e.TrainLoss }},
			{"validation accuracy", "accuracy", func(e train.EpochMetrics) float64 {
				if e.Val == nil || e.Val.Accuracy == nil {
					return math.NaN()
				}
				return *e.Val.Accuracy
			}},
			{"validation agreement with the teacher", "top-1 agreement", func(e train.EpochMetrics) float64 {
				if e.Val == nil {
					return math.NaN()
				}
				return e.Val.Agreement
			}},
		})
		if err != nil {
			return "", err
		}
		if img != nil {
			page.Curves = append(page.Curves, *img)
		}
	}
	if len(run.LMCkpts) > 0 {
		var epochs [][]train.LMEpoch
		for _, c := range run.LMCkpts {
			page.LMCkpts = append(page.LMCkpts, lmCheckpointRow(c))
			epochs = append(epochs, c.Info.Epochs)
		}
		series, metrics := lmCurves(run.LMCkpts)
		img, err := curvesImage(save, "lm-curves", series, epochs, metrics)
		if err != nil {
			return "", err
		}
		if img != nil {
			page.LMCurves = append(page.LMCurves, *img)
		}
	}
	page.LM = newLMTable(evals)
	if len(run.Samples) > 0 {
		for _, f := range run.Samples {
			page.SampleFiles = append(page.SampleFiles, f.Name)
		}
		page.Samples = samplesTable(run.Samples)
	}

	var withClasses []*eval.Result
	lo := 1.0
	for _, r := range evals {
		if r.ECE != nil && len(r.Reliability) > 0 {
			p, err := reliabilityChart(r)
			if err != nil {
				return "", err
			}
			img, err := save("reliability-"+r.Name, squareW, squareH, nil, nil, p)
			if err != nil {
				return "", err
			}
			img.Alt = "reliability diagram of " + r.Name
			img.Caption = fmt.Sprintf("%s: %d rows, accuracy against the %s", r.Name, r.Rows, r.ECEReference)
			if r.LM != nil {
				img.Caption = fmt.Sprintf("%s: %s next-token positions, accuracy against the next tokens", r.Name, human.Digits(r.Tokens))
			}
			page.Reliability = append(page.Reliability, img)
		}
		if len(r.Confusion) > 0 {
			p, err := confusionChart(r)
			if err != nil {
				return "", err
			}
			img, err := save("confusion-"+r.Name, squareW, squareH, nil, nil, p)
			if err != nil {
				return "", err
			}
			img.Alt, img.Caption = "confusion matrix of "+r.Name, r.Name
			if r.Errors != nil {
				img.Caption = fmt.Sprintf("%s: %d errors in %d rows", r.Name, *r.Errors, r.Rows)
			}
			page.Confusion = append(page.Confusion, img)
		}
		if len(r.PerClass) > 0 {
			withClasses = append(withClasses, r)
			for _, c := range r.PerClass {
				if c.Accuracy != nil {
					lo = math.Min(lo, *c.Accuracy)
				}
			}
		}
	}
	if len(withClasses) > 0 {
		// Start the axis at a round value below the lowest accuracy, so
		// the differences between models stay visible.
		lo = math.Max(0, math.Floor((lo-0.02)*20)/20)
		p, err := perClassChart(withClasses, lo)
		if err != nil {
			return "", err
		}
		lg, names := perClassLegend(withClasses)
		img, err := save("per-class", perClassW, perClassH, &lg, names, p)
		if err != nil {
			return "", err
		}
		img.Alt, img.Caption = "per-class accuracy", fmt.Sprintf("The y axis starts at %.2f.", lo)
		page.PerClass = &img
	}

	var html bytes.Buffer
	if err := reportTemplate.Execute(&html, page); err != nil {
		return "", err
	}
	index := filepath.Join(out, "index.html")
	if err := atomicfile.WriteFile(index, html.Bytes(), 0o644); err != nil {
		return "", err
	}
	// Charts of an earlier report of this run that this one did not
	// rewrite (a model renamed or removed) would linger: remove them.
	old, _ := filepath.Glob(filepath.Join(out, "*.png"))
	for _, f := range old {
		name := strings.TrimSuffix(filepath.Base(f), ".png")
		if chartName.MatchString(name) && !slugs[name] {
			os.Remove(f)
		}
	}
	return index, nil
}

// chartName matches the names of the charts runReport writes.
var chartName = regexp.MustCompile(`^(curves|lm-curves|per-class|reliability-.+|confusion-.+)$`)

// uniqueSlug turns s into a file name stem of [a-z0-9._-], distinct from
// the ones in used.
func uniqueSlug(s string, used map[string]bool) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), ".-")
	if base == "" {
		base = "chart"
	}
	slug := base
	for i := 2; used[slug]; i++ {
		slug = fmt.Sprintf("%s-%d", base, i)
	}
	used[slug] = true
	return slug
}

// pct formats a fraction as a percentage, "–" when absent.
func pct(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f%%", 100**v)
}

// num formats a number with the verb f, "–" when absent.
func num(v *float64, f string) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf(f, *v)
}

func modelRow(r *eval.Result) reportModelRow {
	row := reportModelRow{
		Name: r.Name, Kind: r.Model.Kind, Training: "–", Data: r.Data.Path,
		Accuracy: pct(r.Accuracy), Agreement: pct(r.Agreement), KL: num(r.KL, "%.4f"), ECE: num(r.ECE, "%.4f"),
		Errors: "–", Params: human.Digits(r.Model.Params), FileSize: human.Bytes(r.Model.FileBytes),
		LatencyBatch1: "–", LatencyLarge: "–", Rate: "–",
	}
	if r.Model.Training != nil {
		row.Training = r.Model.Training.Label()
	}
	if r.Errors != nil {
		row.Errors = human.Digits(*r.Errors)
	}
	for _, l := range r.Latency {
		if l.Batch == 1 {
			row.LatencyBatch1 = fmt.Sprintf("%.4g", l.P50)
		} else {
			row.LatencyLarge = fmt.Sprintf("%.4g", l.P50)
			row.Rate = human.Digits(int64(math.Round(l.Throughput)))
		}
	}
	return row
}

func ckptRow(c Checkpoint) CheckpointRow {
	row := CheckpointRow{
		Name:         c.Name,
		Method:       eval.TrainingOf(c.Info.Training.Alpha, c.Info.Training.Temperature, c.Info.Epoch).Label(),
		Architecture: eval.DescribeStudent(c.Info.Student),
		Epochs:       fmt.Sprint(len(c.Metrics)),
		Loss:         "–", Accuracy: "–", Agreement: "–", ECE: "–",
	}
	if n := len(c.Metrics); n > 0 {
		last := c.Metrics[n-1]
		row.Loss = fmt.Sprintf("%.4f", last.TrainLoss)
		if v := last.Val; v != nil {
			if v.Accuracy != nil {
				row.Accuracy = fmt.Sprintf("%.2f%%", 100**v.Accuracy)
			}
			row.Agreement = fmt.Sprintf("%.2f%%", 100*v.Agreement)
			row.ECE = fmt.Sprintf("%.4f", v.ECE)
		}
	}
	return row
}

var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
td { white-space: nowrap; } th { vertical-align: bottom; }
th { background: #f4f4f4; } td:first-child, th:first-child, td.l, th.l { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { font-size: 0.85em; color: #555; } .warn { color: #a40; }
td.sample { white-space: pre-wrap; vertical-align: top; max-width: 30em; font-size: 0.9em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="note">Run directory <code>{{.RunDir}}</code>; written by distill {{.Tool}}.</p>
{{range .Warnings}}<p class="warn">Skipped: {{.}}</p>
{{end}}
{{- if .Models}}
<h2>Size and speed</h2>
<table id="models">
<tr><th>model</th><th>kind</th><th>training</th><th>accuracy</th><th>errors</th><th>agreement</th><th>KL</th><th>ECE</th><th>params</th><th>file size</th><th>p50 ms/sample<br>batch 1</th><th>p50 ms/sample<br>batch {{.LargeBatch}}</th><th>samples/s<br>batch {{.LargeBatch}}</th></tr>
{{range .Models}}<tr><td title="evaluated on {{.Data}}">{{.Name}}</td><td class="l">{{.Kind}}</td><td class="l">{{.Training}}</td><td>{{.Accuracy}}</td><td>{{.Errors}}</td><td>{{.Agreement}}</td><td>{{.KL}}</td><td>{{.ECE}}</td><td>{{.Params}}</td><td>{{.FileSize}}</td><td>{{.LatencyBatch1}}</td><td>{{.LatencyLarge}}</td><td>{{.Rate}}</td></tr>
{{end}}</table>
<p class="note">From eval/*.json, on {{.Datasets}}. Agreement is top-1 agreement with the teacher and KL is at temperature 1, in nats per row; ECE uses 15 equal-width confidence bins. Parameters count stored weight values. Latency is wall time per run divided by the batch size (p50 over the timed runs, single process, --threads as given to eval).</p>
{{- end}}
{{- with .LM}}
<h2>Language models: size and speed</h2>
<table id="lm-models">
<tr><th>model</th><th>kind</th><th>training</th><th>perplexity</th><th>NLL</th><th>next-token accuracy</th><th>agreement</th><th>KL</th><th>ECE</th><th>params</th><th>file size</th><th>prefill<br>tokens/s</th>{{range .Batches}}<th>decode tokens/s<br>batch {{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><td title="evaluated on {{.Data}}">{{.Name}}</td><td class="l">{{.Kind}}</td><td class="l">{{.Training}}</td><td>{{.Perplexity}}</td><td>{{.NLL}}</td><td>{{.Accuracy}}</td><td>{{.Agreement}}</td><td>{{.KL}}</td><td>{{.ECE}}</td><td>{{.Params}}</td><td>{{.FileSize}}</td><td>{{.Prefill}}</td>{{range .Decode}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<p class="note">From eval/*.json, on {{.Datasets}}. Per next-token position: NLL of the true next token in nats and perplexity exp(NLL), top-1 accuracy, top-1 agreement with the teacher and KL(teacher ‖ model) at temperature 1 (over the cached buckets for a top-k or sampled cache), ECE over 15 bins against the next tokens. Prefill: one call over a whole window at batch 1; decode: single-token calls after a prompt (with the KV cache when the model has one); tokens/s from the p50 call.</p>
{{- end}}
{{- if .LMCkpts}}
<h2>Language-model training</h2>
<table id="lm-checkpoints">
<tr><th>checkpoint</th><th>training</th><th>architecture</th><th>epochs</th><th>last train loss</th><th>held-out perplexity</th><th>held-out agreement</th><th>held-out KL</th></tr>
{{range .LMCkpts}}<tr><td>{{.Name}}</td><td class="l">{{.Method}}</td><td class="l">{{.Architecture}}</td><td>{{.Epochs}}</td><td>{{.Loss}}</td><td>{{.Perplexity}}</td><td>{{.Agreement}}</td><td>{{.KL}}</td></tr>
{{end}}</table>
<div class="charts">
{{range .LMCurves}}<figure><img src="{{.File}}" alt="{{.Alt}}" width="{{.Width}}"></figure>
{{end}}</div>
<p class="note">From each checkpoint's training.json. Solid: distilled (alpha &gt; 0); dashed: trained on the next tokens only (alpha 0). Held-out figures are per token on the --val cache after every epoch.</p>
{{- end}}
{{- if .Samples}}
<h2>Generated samples</h2>
<table id="samples">
<tr><th>prompt</th>{{range .SampleFiles}}<th class="l">{{.}}</th>{{end}}</tr>
{{range .Samples}}<tr><td class="l sample">{{.Prompt}}</td>{{range .Texts}}<td class="l sample">{{.}}</td>{{end}}</tr>
{{end}}</table>
<p class="note">The first sample of each prompt in each *.jsonl file of distill generate --out, side by side (at most 600 characters each).</p>
{{- end}}
{{- if .Ckpts}}
<h2>Training</h2>
<table id="checkpoints">
<tr><th>checkpoint</th><th>training</th><th>architecture</th><th>epochs</th><th>last train loss</th><th>val accuracy</th><th>val agreement</th><th>val ECE</th></tr>
{{range .Ckpts}}<tr><td>{{.Name}}</td><td class="l">{{.Method}}</td><td class="l">{{.Architecture}}</td><td>{{.Epochs}}</td><td>{{.Loss}}</td><td>{{.Accuracy}}</td><td>{{.Agreement}}</td><td>{{.ECE}}</td></tr>
{{end}}</table>
<div class="charts">
{{range .Curves}}<figure><img src="{{.File}}" alt="{{.Alt}}" width="{{.Width}}"></figure>
{{end}}</div>
<p class="note">Solid: distilled (KD, alpha &gt; 0); dashed: trained on the labels only (alpha 0). The train loss of a KD run (alpha·T²·KL + (1−alpha)·CE) and of a hard-label run (CE) are different quantities: compare the validation curves.</p>
{{- end}}
{{- if .Reliability}}
<h2>Calibration</h2>
<div class="charts">
{{range .Reliability}}<figure><img src="{{.File}}" alt="{{.Alt}}" width="{{.Width}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>
<p class="note">Bars: accuracy of the rows whose top-1 confidence falls in each of 15 bins; points: their mean confidence. A calibrated model's bars follow the diagonal.</p>
{{- end}}
{{- if .Confusion}}
<h2>Confusion matrices</h2>
<div class="charts">
{{range .Confusion}}<figure><img src="{{.File}}" alt="{{.Alt}}" width="{{.Width}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>
<p class="note">Rows are labels, columns predictions; the colour is the fraction of the label's rows, the number the count.</p>
{{- end}}
{{- with .PerClass}}
<h2>Per-class accuracy</h2>
<figure><img src="{{.File}}" alt="{{.Alt}}" width="{{.Width}}"><figcaption>{{.Caption}}</figcaption></figure>
{{- end}}
</body>
</html>
`))

// WriteTable prints the eval outputs of runDir as text tables: the same
// rows as the report's size and speed tables, models without training
// provenance (the teacher) first; the classifiers' table, then, when
// there are language models, theirs.
func WriteTable(w io.Writer, runDir string) error {
	_, evals, _, err := Load(runDir, filepath.Join(runDir, "report"))
	if err != nil {
		return err
	}
	var rows []reportModelRow
	for _, r := range evals {
		if r.LM == nil {
			rows = append(rows, modelRow(r))
		}
	}
	lmt := newLMTable(evals)
	teacherFirst := func(a, b string) bool { return a == "–" && b != "–" }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(rows) > 0 || lmt == nil {
		fmt.Fprintln(tw, "model\ttraining\taccuracy\terrors\tagreement\tparams\tfile\tms/sample b=1\tms/sample b=large\t")
		sort.SliceStable(rows, func(i, j int) bool { return teacherFirst(rows[i].Training, rows[j].Training) })
		for _, row := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.Name, row.Training, row.Accuracy, row.Errors,
				row.Agreement, row.Params, row.FileSize, row.LatencyBatch1, row.LatencyLarge)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if lmt == nil {
		return nil
	}
	if len(rows) > 0 {
		fmt.Fprintln(w)
	}
	head := "model\ttraining\tperplexity\tagreement\tKL\tparams\tfile\tprefill tok/s\t"
	for _, b := range lmt.Batches {
		head += fmt.Sprintf("decode tok/s b=%d\t", b)
	}
	fmt.Fprintln(tw, head)
	sort.SliceStable(lmt.Rows, func(i, j int) bool { return teacherFirst(lmt.Rows[i].Training, lmt.Rows[j].Training) })
	for _, row := range lmt.Rows {
		line := strings.Join([]string{row.Name, row.Training, row.Perplexity, row.Agreement, row.KL, row.Params, row.FileSize, row.Prefill}, "\t") + "\t"
		for _, d := range row.Decode {
			line += d + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
