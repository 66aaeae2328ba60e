package eval

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/train"
)

// A Runner runs a model on one batch: a float32 input of the given shape
// (batch axis first) in, the values of every output fetched out. An ONNX
// session is one (eval/onnxmodel.Runner).
type Runner interface {
	Run(shape []int64, x []float32) ([][]float32, error)
	Close() error
}

// ParityBatch is the number of rows per run in Parity.
const ParityBatch = 256

// ParityResult compares a model's logits with a student's forward pass.
type ParityResult struct {
	Cache                  string
	Rows                   int
	MaxDiff, MaxAbs        float64 // max |Δlogit| (NaN counts as +Inf), max |logit| of the Go student
	Labeled                int     // rows with a label
	GoCorrect, ONNXCorrect int     // correct top-1 of the Go student and of the model
	Agree                  int     // rows where both pick the same class
	Probs                  bool    // the model's second output is softmax(logits), compared in ProbsDiff
	ProbsDiff              float64 // max |probs − softmax(model logits)|
	// Tolerance bounds MaxDiff, set by the caller (export.Tolerance of
	// the variant), and ToleranceRule says how it was made, for OK and
	// String.
	Tolerance     float64
	ToleranceRule string
}

// Parity runs the first rows rows of the cache at path through a model
// and through c's Go student, in batches of ParityBatch, and compares
// them. The cache must hold the student's input column (extract
// --keep-input). open makes the model's Runner (an exported student:
// output 0 its logits [n, C], output 1 with probs its probabilities); it
// is called once the cache has been checked against the student.
func Parity(ctx context.Context, c *train.Checkpoint, path string, rows int, probs bool, open func() (Runner, error)) (*ParityResult, error) {
	data, spec, err := openParity(c, path)
	if err != nil {
		return nil, err
	}
	defer data.Close()
	cfg := c.Student.Config
	inShape := []int64{int64(cfg.Inputs)}
	if len(cfg.InputShape) > 0 {
		inShape = inShape[:0]
		for _, d := range cfg.InputShape {
			inShape = append(inShape, int64(d))
		}
	}

	run, err := open()
	if err != nil {
		return nil, err
	}
	defer run.Close()
	// Inference mode: BatchNorm reads its running statistics (a loaded
	// checkpoint's layers start in training mode) and Dropout is off.
	c.Student.SetTraining(false, nil)

	res := &ParityResult{Cache: path, Probs: probs}
	k := cfg.Classes
	var goLogits, onnxLogits, probVals []float32
	var labels []int64
	// flush compares the buffered rows.
	flush := func(x []float32, n int) error {
		if n == 0 {
			return nil
		}
		want := c.Student.Forward(train.Mat{Rows: n, Cols: cfg.Inputs, Data: x}).Data[:n*k]
		out, err := run.Run(append([]int64{int64(n)}, inShape...), x)
		if err != nil {
			return err
		}
		if len(out[0]) != n*k {
			return fmt.Errorf("the model returned %d logits for %d rows of %d classes", len(out[0]), n, k)
		}
		goLogits = append(goLogits, want...)
		onnxLogits = append(onnxLogits, out[0]...)
		if probs {
			probVals = append(probVals, out[1]...)
		}
		return nil
	}
	var buf []float32
	n := 0
	for b, err := range data.All() {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		x := b.Inputs[spec.Name]
		for r := 0; r < b.Len() && res.Rows < rows; r++ {
			buf = append(buf, x[r*cfg.Inputs:(r+1)*cfg.Inputs]...)
			if len(b.Labels) > 0 {
				labels = append(labels, b.Labels[r])
			}
			n++
			res.Rows++
			if n == ParityBatch {
				if err := flush(buf, n); err != nil {
					return nil, err
				}
				buf, n = buf[:0], 0
			}
		}
		if res.Rows >= rows {
			break
		}
	}
	if err := flush(buf, n); err != nil {
		return nil, err
	}
	if res.Rows == 0 {
		return nil, fmt.Errorf("%s has no rows", path)
	}
	for i, w := range goLogits {
		res.MaxAbs = max(res.MaxAbs, math.Abs(float64(w)))
		d := math.Abs(float64(onnxLogits[i] - w))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		res.MaxDiff = max(res.MaxDiff, d)
	}
	for r := range res.Rows {
		g, x := argmax(goLogits[r*k:(r+1)*k]), argmax(onnxLogits[r*k:(r+1)*k])
		if g == x {
			res.Agree++
		}
		if len(labels) == res.Rows {
			res.Labeled++
			if int64(g) == labels[r] {
				res.GoCorrect++
			}
			if int64(x) == labels[r] {
				res.ONNXCorrect++
			}
		}
		if probs {
			l := onnxLogits[r*k : (r+1)*k]
			m := l[argmax(l)]
			var z float64
			for _, v := range l {
				z += math.Exp(float64(v - m))
			}
			for j, v := range l {
				d := math.Abs(math.Exp(float64(v-m))/z - float64(probVals[r*k+j]))
				res.ProbsDiff = max(res.ProbsDiff, d)
			}
		}
	}
	return res, nil
}

// CheckParity checks, without running a model, that Parity can compare
// c's student on the first rows rows of the cache at path: the cache
// opens, holds the student's input column at its width and rows, has the
// student's classes, and those rows' inputs are finite.
func CheckParity(c *train.Checkpoint, path string, rows int) error {
	data, spec, err := openParity(c, path)
	if err != nil {
		return err
	}
	defer data.Close()
	seen := 0
	for b, err := range data.All() {
		if err != nil {
			return err
		}
		n := min(b.Len(), rows-seen)
		x := b.Inputs[spec.Name][:n*spec.Size()]
		if r := nonFiniteRow(x, n); r >= 0 {
			return fmt.Errorf("%s: row %d has a NaN or infinite input value; parity cannot be measured on it", path, b.Rows[r])
		}
		if seen += n; seen >= rows {
			break
		}
	}
	return nil
}

// openParity opens the cache at path and finds the student's input column.
func openParity(c *train.Checkpoint, path string) (*formats.Cache, *formats.TensorSpec, error) {
	data, err := formats.Open(path)
	if err != nil {
		return nil, nil, err
	}
	spec, err := paritySpec(c, data, path)
	if err != nil {
		data.Close()
		return nil, nil, err
	}
	return data, spec, nil
}

// paritySpec returns the input column of data that c's student reads.
func paritySpec(c *train.Checkpoint, data *formats.Cache, path string) (*formats.TensorSpec, error) {
	cfg := c.Student.Config
	dcfg := data.Config()
	if dcfg.Positions > 0 {
		return nil, fmt.Errorf("%s is a per-token cache (%d positions per row); the student is a classifier", path, dcfg.Positions)
	}
	name := c.Info.Input
	var spec *formats.TensorSpec
	var names []string
	for i, in := range dcfg.Inputs {
		names = append(names, in.Name)
		if in.Name == name || name == "" && len(dcfg.Inputs) == 1 {
			spec = &dcfg.Inputs[i]
		}
	}
	if spec == nil {
		if len(names) == 0 {
			return nil, fmt.Errorf("%s has no cached inputs (extract it with --keep-input)", path)
		}
		return nil, fmt.Errorf("%s has no input %q (it has %s)", path, name, strings.Join(names, ", "))
	}
	if spec.Size() != cfg.Inputs {
		return nil, fmt.Errorf("%s: input %s has %d values per row, the student takes %d", path, spec.Name, spec.Size(), cfg.Inputs)
	}
	if dcfg.Classes != cfg.Classes {
		return nil, fmt.Errorf("%s has %d classes, the student %d", path, dcfg.Classes, cfg.Classes)
	}
	if data.NumRows() == 0 {
		return nil, fmt.Errorf("%s has no rows", path)
	}
	return spec, nil
}

// OK reports whether the model is within Tolerance (and, with Probs, its
// probabilities within 1e-6 of softmax(logits)).
func (r *ParityResult) OK() bool {
	return r.MaxDiff <= r.Tolerance && (!r.Probs || r.ProbsDiff <= 1e-6)
}

// String reports the comparison for people: rows, the largest logit
// difference against the tolerance and the verdict, top-1 agreement and
// the accuracy of both models.
func (r *ParityResult) String() string {
	var b strings.Builder
	verdict := "ok"
	if !r.OK() {
		verdict = "EXCEEDED"
	}
	fmt.Fprintf(&b, "verify: %d rows of %s through onnxruntime and the Go student\n", r.Rows, r.Cache)
	fmt.Fprintf(&b, "  max |Δlogit| %.3g (max |logit| %.3g; tolerance %s = %.3g): %s\n", r.MaxDiff, r.MaxAbs, r.ToleranceRule, r.Tolerance, verdict)
	if r.Probs {
		fmt.Fprintf(&b, "  max |probs − softmax(logits)| %.3g (tolerance 1e-06)\n", r.ProbsDiff)
	}
	fmt.Fprintf(&b, "  top-1 agreement %.2f%%\n", 100*float64(r.Agree)/float64(r.Rows))
	if r.Labeled > 0 {
		g, x := 100*float64(r.GoCorrect)/float64(r.Labeled), 100*float64(r.ONNXCorrect)/float64(r.Labeled)
		fmt.Fprintf(&b, "  accuracy: Go student %.2f%%, ONNX %.2f%% (%+.2f points) on %d labeled rows\n", g, x, x-g, r.Labeled)
	} else {
		b.WriteString("  accuracy: the cache has no labels\n")
	}
	return b.String()
}
