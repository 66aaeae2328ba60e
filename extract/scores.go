package extract

import (
	"fmt"
	"math"
	"strings"

	"github.com/distill-ml/distill/internal/onnxpb"
)

// ScoreKind says what the values fed to the cache as "logits" are.
type ScoreKind string

const (
	// Logits are raw pre-softmax scores (also the input of a final Softmax
	// or LogSoftmax node, which extract fetches instead of the output).
	Logits ScoreKind = "logits"
	// Probs are probabilities; extract stores their logarithm (LogProbs).
	Probs ScoreKind = "probs"
	// LogProbs are log-probabilities (a log-softmax output or the log of
	// probabilities). softmax(LogProbs/T) is a valid tempered distribution.
	LogProbs ScoreKind = "log_probs"
)

// ParseScoreKind parses a --scores value; "" and "auto" give "".
func ParseScoreKind(s string) (ScoreKind, error) {
	switch s {
	case "", "auto":
		return "", nil
	case "logits":
		return Logits, nil
	case "probs", "probabilities":
		return Probs, nil
	case "log_probs", "logprobs", "log-probs", "log_softmax":
		return LogProbs, nil
	}
	return "", fmt.Errorf("unknown score kind %q (want auto, logits, probs or log_probs)", s)
}

// ScoreSource is where a teacher's class scores come from.
type ScoreSource struct {
	// Output is the model output (or named tensor) chosen as the scores.
	Output string
	// Tensor is the tensor actually fetched: Output itself, or the input of
	// the Softmax/LogSoftmax/ZipMap that produced it.
	Tensor string
	// Kind is what Tensor holds; "" means decide from the values of the
	// first batch (see DetectKind).
	Kind ScoreKind
	// Why explains the choice in one line, for logs and the manifest.
	Why string
}

// ChooseScores picks the tensor holding the class scores. With override
// (--output) that tensor is used; otherwise the model's float outputs are
// ranked, and sequence<map> (ZipMap) outputs are followed back to their
// probability tensor. A final Softmax or LogSoftmax is looked through so the
// cache holds logits: temperature needs logits, not probabilities rounded
// to 0 and 1.
func (m *Model) ChooseScores(override string) (ScoreSource, error) {
	var cand []string
	if override != "" {
		if !m.Has(override) {
			return ScoreSource{}, fmt.Errorf("%w: --output %q is not a tensor of the model; outputs: %s; closest names: %s",
				ErrModel, override, strings.Join(quoteAll(m.outputNames()), ", "), strings.Join(quoteAll(m.Closest(override, 5)), ", "))
		}
		cand = []string{override}
	} else {
		best, bestRank := "", -1
		for _, o := range m.Outputs() {
			r := scoreRank(o)
			if r > bestRank {
				best, bestRank = o.Name, r
			}
		}
		if bestRank <= 0 {
			return ScoreSource{}, fmt.Errorf("%w: no output looks like class scores (outputs: %s); name one with --output",
				ErrModel, strings.Join(quoteAll(m.outputNames()), ", "))
		}
		cand = []string{best}
	}
	src := ScoreSource{Output: cand[0], Tensor: cand[0]}
	var why []string
	// Look back through pass-through ops to the op that decides the kind.
	for i := 0; i < 8; i++ {
		p := m.ProducedBy(src.Tensor)
		if p == nil || len(p.GetInput()) == 0 {
			break
		}
		op := p.GetOpType()
		switch {
		case op == "Identity":
			src.Tensor = p.GetInput()[0]
			continue
		case op == "ZipMap":
			src.Tensor = p.GetInput()[0]
			src.Kind = Probs
			why = append(why, fmt.Sprintf("%s is a sequence of maps (ZipMap); reading its input %q", src.Output, src.Tensor))
			continue
		case op == "Softmax" || op == "LogSoftmax":
			if axisIsLast(p, m.Info(p.GetInput()[0])) {
				why = append(why, fmt.Sprintf("graph ends in %s; caching its input %q (the logits)", op, p.GetInput()[0]))
				src.Tensor = p.GetInput()[0]
				src.Kind = Logits
			} else if op == "Softmax" {
				src.Kind = Probs
			} else {
				src.Kind = LogProbs
			}
		case strings.HasSuffix(op, "Classifier") && p.GetDomain() == "ai.onnx.ml":
			if src.Kind == "" {
				src.Kind = Probs
			}
			why = append(why, fmt.Sprintf("%q comes from %s: class probabilities", src.Tensor, op))
		}
		break
	}
	if src.Kind == "" {
		why = append(why, fmt.Sprintf("using output %q; kind decided from its values", src.Output))
	}
	src.Why = strings.Join(why, "; ")
	return src, nil
}

func (m *Model) outputNames() []string {
	var s []string
	for _, o := range m.Outputs() {
		s = append(s, o.Name)
	}
	return s
}

// scoreRank ranks an output as a class-score candidate; 0 = not one.
func scoreRank(o TensorInfo) int {
	r := 0
	switch {
	case o.Kind == "sequence" || o.Kind == "map":
		r = 2 // ZipMap probabilities
	case o.Kind == "tensor" && (o.Elem == Float32 || o.Elem == Float64 || o.Elem == Float16):
		r = 3
		if len(o.Shape) == 2 {
			r = 5
		}
	default:
		return 0
	}
	n := strings.ToLower(o.Name)
	for _, w := range []string{"logit", "score", "prob", "output", "pred"} {
		if strings.Contains(n, w) {
			r++
			break
		}
	}
	if strings.Contains(n, "label") {
		r--
	}
	return r
}

// axisIsLast reports whether a Softmax-like node normalises over the last
// axis of a rank-2 input (the class axis), including the opset < 13
// default axis=1, which for rank 2 is the same thing.
func axisIsLast(n *onnxpb.NodeProto, in TensorInfo) bool {
	axis, set := int64(-1), false
	for _, a := range n.GetAttribute() {
		if a.GetName() == "axis" {
			axis, set = a.GetI(), true
		}
	}
	rank := int64(len(in.Shape))
	if in.Shape == nil {
		rank = 2 // unknown: the common case for classifier heads
	}
	if !set {
		return true // -1 (opset 13) or 1 (older; flattens to 2-D): class axis for [N,C]
	}
	return axis == -1 || axis == rank-1
}

// DetectKind decides whether values (n rows of c scores) look like
// probabilities, log-probabilities or logits: probabilities are all in
// [0,1] with rows summing to 1; log-probabilities are all ≤ 0 with
// log-sum-exp 0.
func DetectKind(values []float32, c int) ScoreKind {
	if c <= 1 || len(values) < c {
		return Logits
	}
	probs, logp := true, true
	for i := 0; i+c <= len(values) && (probs || logp); i += c {
		row := values[i : i+c]
		var sum, lse float64
		mx := math.Inf(-1)
		for _, v := range row {
			f := float64(v)
			if f < 0 || f > 1 {
				probs = false
			}
			if f > 0 {
				logp = false
			}
			sum += f
			mx = math.Max(mx, f)
		}
		for _, v := range row {
			lse += math.Exp(float64(v) - mx)
		}
		lse = mx + math.Log(lse)
		if math.Abs(sum-1) > 1e-3 {
			probs = false
		}
		if math.Abs(lse) > 1e-3 {
			logp = false
		}
	}
	switch {
	case probs:
		return Probs
	case logp:
		return LogProbs
	}
	return Logits
}

// MinLogProb is the floor applied when probabilities are turned into
// log-probabilities: log(0) would be -Inf, so a probability below the
// smallest normal float32 is stored as log(1.17549435e-38) ≈ -87.34.
var MinLogProb = float32(math.Log(1.17549435e-38))

// LogProbsInPlace replaces probabilities with their natural logarithm,
// floored at MinLogProb.
func LogProbsInPlace(v []float32) {
	for i, p := range v {
		if p > 1.17549435e-38 {
			v[i] = float32(math.Log(float64(p)))
		} else if p >= 0 {
			v[i] = MinLogProb
		} else {
			v[i] = float32(math.NaN())
		}
	}
}
