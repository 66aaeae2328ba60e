package eval

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Options are the settings of Run. The zero value is usable.
type Options struct {
	// Name is the model's name in the result; "" leaves it empty.
	Name string
	// Input is the data column to feed; "" = the one named like the
	// model's input, or the only one (Data.ChooseColumn).
	Input string
	// Batch is the rows per model run and the large batch of the latency
	// measurement; 0 means 256.
	Batch int
	// BenchTime is the time spent measuring latency at each batch size
	// (BenchLatency: at least 100 runs at batch 1, 10 at Batch); 0 skips
	// the measurement.
	BenchTime time.Duration
	// Threads is recorded in the result (the model was opened with it).
	Threads int
	// ToolVersion is recorded in the result.
	ToolVersion string
	// Progress, when set, is called after every chunk with the rows done
	// and the rows in all.
	Progress func(done, total int64)
	// Warn, when set, receives notes about the result that are not errors:
	// a teacher with none of the data's rows, labels out of range.
	Warn func(msg string)
}

// nonFiniteRow returns the index of the first of the n rows of x holding
// a NaN or ±Inf, or -1.
func nonFiniteRow(x []float32, n int) int {
	if n == 0 {
		return -1
	}
	w := len(x) / n
	for i, v := range x {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return i / w
		}
	}
	return -1
}

// Run evaluates m on d: it picks the input column and shape, opens the
// scorer, scores every row in chunks of o.Batch, accumulates the
// classifier metrics (ClassifierMetrics) against d's labels and the
// teacher — teacher's scores matched by row id, or, when teacher is nil
// and d is a cache, that cache's own scores — and measures the latency.
// An input row holding NaN or ±Inf is an error naming its row id: a
// model's scores on it would mean nothing.
func Run(ctx context.Context, m *Model, d *Data, teacher *TeacherTable, o *Options) (*Result, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Batch == 0 {
		opts.Batch = 256
	}
	warn := func(format string, args ...any) {
		if opts.Warn != nil {
			opts.Warn(fmt.Sprintf(format, args...))
		}
	}
	if err := d.ChooseColumn(opts.Input, m.Input); err != nil {
		return nil, err
	}
	if err := d.Fit(m.Shape, m.Info.Path); err != nil {
		return nil, err
	}
	res := &Result{Name: opts.Name, Model: m.Info, Data: d.Info, Threads: opts.Threads, Tool: opts.ToolVersion}
	res.Model.InputShape = d.Shape()
	tclasses := 0
	if teacher != nil {
		ti := teacher.Info
		res.Teacher, tclasses = &ti, teacher.Classes
	} else if ti, c, ok := d.Teacher(); ok {
		res.Teacher, tclasses = &ti, c
	}

	sc, err := m.Open(d.Shape())
	if err != nil {
		return nil, err
	}
	defer sc.Close()

	var acc *Accumulator
	var accuracy *Accuracy
	var agreement *Agreement
	var gathered TeacherScores
	var sample []float32 // the first Batch rows' inputs, for latency
	width := int(d.Width())
	start := time.Now()
	var done int64
	for ch, err := range d.Chunks(opts.Batch) {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := len(ch.Rows)
		if r := nonFiniteRow(ch.X, n); r >= 0 {
			return nil, fmt.Errorf("%s: row %d has a NaN or infinite input value; a model cannot be measured on it (check the data and --scale, --mean, --std)",
				d.Info.Path, ch.Rows[r])
		}
		if len(sample) < opts.Batch*width {
			sample = append(sample, ch.X[:min(len(ch.X), opts.Batch*width-len(sample))]...)
		}
		scores, err := sc.Score(ch.X, n)
		if err != nil {
			return nil, err
		}
		if acc == nil {
			if n == 0 || len(scores)%n != 0 {
				return nil, fmt.Errorf("model returned %d scores for %d rows", len(scores), n)
			}
			classes := len(scores) / n
			if tclasses != 0 && tclasses != classes {
				return nil, fmt.Errorf("the model scores %d classes but the teacher (%s) has %d", classes, res.Teacher.Path, tclasses)
			}
			var ms []Metric
			ms, accuracy, agreement = ClassifierMetrics(classes, d.HasLabels(), res.Teacher != nil)
			acc = NewAccumulator(classes, ms...)
		}
		if len(scores) != n*acc.Classes() {
			return nil, fmt.Errorf("model returned %d scores for %d rows of %d classes", len(scores), n, acc.Classes())
		}
		t := ch.Teacher
		if teacher != nil {
			teacher.Gather(ch.Rows, &gathered)
			t = &gathered
		}
		acc.Add(scores, ch.Labels, ch.Rows, t)
		done += int64(n)
		if opts.Progress != nil {
			opts.Progress(done, d.Info.Rows)
		}
	}
	if acc == nil {
		return nil, fmt.Errorf("%s has no rows", d.Info.Path)
	}
	res.Seconds = time.Since(start).Seconds()
	acc.Fill(res)
	res.Model.ScoreKind = sc.ScoreKind()
	if agreement != nil {
		res.Teacher.Matched = agreement.Matched()
		if agreement.Matched() == 0 {
			warn("the teacher cache %s has none of the data's row ids; no agreement or KL", res.Teacher.Path)
		}
	}
	if accuracy != nil && accuracy.OutOfRange > 0 {
		warn("%d labels outside the model's %d classes (first: %d at row %d), counted as errors",
			accuracy.OutOfRange, acc.Classes(), accuracy.FirstBad, accuracy.FirstBadRow)
	}
	if opts.BenchTime > 0 {
		for i, b := range []int{1, opts.Batch} {
			if i == 1 && b == 1 {
				break
			}
			x := make([]float32, 0, b*width)
			for len(x) < b*width {
				x = append(x, sample[:min(len(sample), b*width-len(x))]...)
			}
			minRuns := 100
			if b > 1 {
				minRuns = 10
			}
			l, err := BenchLatency(func() error {
				if err := ctx.Err(); err != nil {
					return err
				}
				_, err := sc.Score(x, b)
				return err
			}, b, opts.BenchTime, minRuns)
			if err != nil {
				return nil, err
			}
			if rb := sc.RunBatch(b); rb != b {
				l.RunBatch = rb
			}
			res.Latency = append(res.Latency, l)
		}
	}
	return res, nil
}
