package eval

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/distill-ml/distill/internal/human"
)

// WriteText prints r for people: the headline metrics, the model's size
// and latency, then the per-class table, the reliability table and the
// confusion matrix (for at most 20 classes; see the JSON beyond). Metrics
// a result lacks print as "-" with the reason.
func (r *Result) WriteText(out io.Writer) error {
	if r.LM != nil {
		return r.writeLMText(out)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	r.writeModel(w)
	fmt.Fprintf(w, "data\t%s (%s, column %q %s): %d rows, %d classes\n", r.Data.Path, r.Data.Kind, r.Data.Column, human.Shape(r.Model.InputShape), r.Rows, r.Classes)
	if r.Accuracy != nil {
		fmt.Fprintf(w, "accuracy\t%s\t%d errors\n", pct(*r.Accuracy), *r.Errors)
	} else {
		fmt.Fprintf(w, "accuracy\t-\tno labels\n")
	}
	if r.Teacher != nil && r.Agreement != nil {
		fmt.Fprintf(w, "agreement\t%s\ttop-1 with the teacher (%s, %d of %d rows matched)\n", pct(*r.Agreement), r.Teacher.Path, r.Teacher.Matched, r.Rows)
		if r.KL != nil {
			fmt.Fprintf(w, "KL(teacher‖model)\t%.4g\tnats per row at T=1\n", *r.KL)
		} else {
			fmt.Fprintf(w, "KL(teacher‖model)\t-\tno row with finite scores on both sides\n")
		}
	} else {
		fmt.Fprintf(w, "agreement\t-\tno teacher scores (--teacher-cache)\n")
	}
	if r.ECE != nil {
		fmt.Fprintf(w, "ECE\t%.4f\t%d bins, against the %s\n", *r.ECE, r.ECEBins, r.ECEReference)
	}
	if r.NonFinite > 0 {
		fmt.Fprintf(w, "non-finite\t%d rows\tNaN/Inf scores, counted as errors\n", r.NonFinite)
	}
	fmt.Fprintf(w, "params\t%s\n", human.Digits(r.Model.Params))
	fmt.Fprintf(w, "file\t%s\t%s\n", human.Bytes(r.Model.FileBytes), r.Model.File)
	for _, l := range r.Latency {
		fmt.Fprintf(w, "latency batch %d\tp50 %.4g ms/sample\tp99 %.4g ms/sample, %.0f samples/s, %d runs\n", l.Batch, l.P50, l.P99, l.Throughput, l.Runs)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(r.PerClass) > 0 {
		fmt.Fprintf(out, "\nper class:\n")
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "class\trows\tcorrect\taccuracy\t\n")
		for _, c := range r.PerClass {
			a := "-"
			if c.Accuracy != nil {
				a = pct(*c.Accuracy)
			}
			fmt.Fprintf(w, "%d\t%d\t%d\t%s\t\n", c.Class, c.Rows, c.Correct, a)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(r.Reliability) > 0 {
		fmt.Fprintf(out, "\nreliability (top-1 confidence bins, accuracy against the %s):\n", r.ECEReference)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "bin\trows\tconfidence\taccuracy\t\n")
		for _, b := range r.Reliability {
			if b.Rows == 0 {
				continue
			}
			fmt.Fprintf(w, "(%.3f, %.3f]\t%d\t%.4f\t%.4f\t\n", b.Lo, b.Hi, b.Rows, *b.Confidence, *b.Accuracy)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(r.Confusion) > 0 {
		if len(r.Confusion) > 20 {
			fmt.Fprintf(out, "\nconfusion matrix: %d classes, see --json\n", len(r.Confusion))
			return nil
		}
		fmt.Fprintf(out, "\nconfusion matrix (rows: label, columns: prediction):\n")
		w = tabwriter.NewWriter(out, 0, 4, 1, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "\t")
		for c := range r.Confusion {
			fmt.Fprintf(w, "%d\t", c)
		}
		fmt.Fprintln(w)
		for y, row := range r.Confusion {
			fmt.Fprintf(w, "%d\t", y)
			for _, v := range row {
				fmt.Fprintf(w, "%d\t", v)
			}
			fmt.Fprintln(w)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// pct formats a fraction as a percentage.
func pct(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

// writeModel prints the model line (name, kind, training, path) and the
// architecture.
func (r *Result) writeModel(w io.Writer) {
	kind := r.Model.Kind
	if t := r.Model.Training; t != nil {
		kind += ", " + t.Label()
	}
	fmt.Fprintf(w, "model\t%s (%s) %s\n", r.Name, kind, r.Model.Path)
	if r.Model.Architecture != "" {
		fmt.Fprintf(w, "architecture\t%s\n", r.Model.Architecture)
	}
}

// writeLMText prints a language model's result: NLL and perplexity,
// next-token accuracy, agreement and KL per token, ECE, size and the
// token latencies.
func (r *Result) writeLMText(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	r.writeModel(w)
	split := ""
	if r.Data.Split != "" && r.Data.Split != "all" {
		split = ", " + r.Data.Split + " windows"
	}
	fmt.Fprintf(w, "data\t%s (%s%s): %d windows of %d tokens, %s positions, vocabulary %d\n",
		r.Data.Path, r.Data.Kind, split, r.Rows, r.LM.SeqLen, human.Digits(r.Tokens), r.Classes)
	if r.NLL != nil {
		fmt.Fprintf(w, "NLL\t%.4f\tnats per token against the next tokens\n", *r.NLL)
		fmt.Fprintf(w, "perplexity\t%.3f\n", *r.Perplexity)
	}
	if r.Accuracy != nil {
		fmt.Fprintf(w, "next-token accuracy\t%s\ttop-1\n", pct(*r.Accuracy))
	}
	if r.Teacher != nil && r.Agreement != nil {
		fmt.Fprintf(w, "agreement\t%s\ttop-1 with the teacher per token (%s)\n", pct(*r.Agreement), r.Teacher.Path)
		if r.KL != nil {
			fmt.Fprintf(w, "KL(teacher‖model)\t%.4g\tnats per token at T=1%s\n", *r.KL, klBuckets(r.Teacher))
		}
	} else {
		fmt.Fprintf(w, "agreement\t-\tno teacher scores (--data a per-token cache, or --teacher-cache)\n")
	}
	if r.ECE != nil {
		fmt.Fprintf(w, "ECE\t%.4f\t%d bins, against the next tokens\n", *r.ECE, r.ECEBins)
	}
	if r.NonFinite > 0 {
		fmt.Fprintf(w, "non-finite\t%d positions\tNaN/Inf logits, counted as errors\n", r.NonFinite)
	}
	fmt.Fprintf(w, "params\t%s\n", human.Digits(r.Model.Params))
	fmt.Fprintf(w, "file\t%s\t%s\n", human.Bytes(r.Model.FileBytes), r.Model.File)
	cache := "KV cache"
	if !r.LM.KVCache {
		cache = "no KV cache: every call re-runs the prefix"
	}
	if p := r.LM.Prefill; p != nil {
		fmt.Fprintf(w, "prefill\t%.0f tokens/s\tbatch 1 × %d tokens, p50 %.4g ms, p99 %.4g ms, %d calls\n", p.TokensPerSec, p.Tokens, p.P50, p.P99, p.Calls)
	}
	for _, l := range r.LM.Decode {
		fmt.Fprintf(w, "decode batch %d\t%.0f tokens/s\tp50 %.4g ms, p99 %.4g ms per step, %d steps after %d tokens, %d calls (%s)\n",
			l.Batch, l.TokensPerSec, l.P50, l.P99, l.Steps, l.Past, l.Calls, cache)
	}
	return w.Flush()
}

// klBuckets says over what the KL against teacher t runs.
func klBuckets(t *TeacherInfo) string {
	switch {
	case t.Samples > 0:
		return fmt.Sprintf(", over the ids drawn (%d draws) + the rest: a lower bound", t.Samples)
	case t.TopK > 0:
		return fmt.Sprintf(", over the top %d + the rest: a lower bound", t.TopK)
	}
	return ""
}
