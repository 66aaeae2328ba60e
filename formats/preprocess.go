package formats

import (
	"fmt"
	"strconv"
	"strings"
)

// Preprocess is what extract does to dataset values before the teacher sees
// them: x' = (x·Scale − Mean[c]) / Std[c], c the channel (the first
// per-sample axis, see Channels), then a reshape to the model's per-sample
// shape. The zero value feeds values unchanged. A cache records it in
// Manifest.Dataset.Preprocess, so that train can recompute the inputs of a
// cache extracted without them.
type Preprocess struct {
	// Scale multiplies every value first; 0 means 1.
	Scale float64 `json:"scale,omitempty"`
	// Mean and Std are per channel, or one value for all; empty = 0 and 1.
	Mean []float64 `json:"mean,omitempty"`
	Std  []float64 `json:"std,omitempty"`
	// Shape is the per-sample shape fed to the model (without the batch
	// axis); nil = the model input's declared shape.
	Shape []int64 `json:"shape,omitempty"`
}

// IsZero reports whether p changes nothing.
func (p Preprocess) IsZero() bool {
	return (p.Scale == 0 || p.Scale == 1) && len(p.Mean) == 0 && len(p.Std) == 0 && p.Shape == nil
}

// Describe lists the steps as human-readable strings, as recorded in
// Manifest.Dataset.Preprocessing.
func (p Preprocess) Describe() []string {
	var s []string
	if p.Scale != 0 && p.Scale != 1 {
		s = append(s, "scale "+strconv.FormatFloat(p.Scale, 'g', -1, 64))
	}
	if len(p.Mean) > 0 {
		s = append(s, "subtract mean "+floatsString(p.Mean))
	}
	if len(p.Std) > 0 {
		s = append(s, "divide by std "+floatsString(p.Std))
	}
	if p.Shape != nil {
		s = append(s, "reshape "+shapeString(p.Shape))
	}
	return s
}

func floatsString(f []float64) string {
	p := make([]string, len(f))
	for i, v := range f {
		p[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strings.Join(p, ",")
}

// shapeString formats a shape like [N,1,28,28]: a negative first
// dimension is the batch N, a negative later one unknown (?).
func shapeString(s []int64) string {
	p := make([]string, len(s))
	for i, d := range s {
		switch {
		case d >= 0:
			p[i] = strconv.FormatInt(d, 10)
		case i == 0:
			p[i] = "N"
		default:
			p[i] = "?"
		}
	}
	return "[" + strings.Join(p, ",") + "]"
}

// Validate checks the mean/std lists against the channel count and that no
// std is zero. The messages name extract's flags (--mean, --std).
func (p Preprocess) Validate(channels int) error {
	for _, l := range []struct {
		name string
		v    []float64
	}{{"--mean", p.Mean}, {"--std", p.Std}} {
		if len(l.v) > 1 && len(l.v) != channels {
			return fmt.Errorf("%s has %d values but the input has %d channels; give one value or one per channel", l.name, len(l.v), channels)
		}
	}
	for _, s := range p.Std {
		if s == 0 {
			return fmt.Errorf("--std 0 would divide by zero")
		}
	}
	return nil
}

// Channels returns the channel count Apply takes for a per-sample shape
// fed to a model: its first axis when it has two or more, else 1.
func Channels(shape []int64) int {
	if len(shape) > 1 {
		return int(shape[0])
	}
	return 1
}

// Apply transforms data in place: n samples of per-sample size len/n with
// channels channels (values per channel = size/channels; a count that does
// not divide the size is taken as 1). Each value becomes x·a + b in
// float32 with a = Scale/Std[c] and b = −Mean[c]/Std[c] computed in
// float64, so the result depends only on the value and its channel, not
// on how samples are grouped into calls. It panics if Mean or Std has
// more than one value but fewer than channels (see Validate).
func (p Preprocess) Apply(data []float32, n, channels int) {
	if n == 0 || len(data) == 0 {
		return
	}
	scale := p.Scale
	if scale == 0 {
		scale = 1
	}
	size := len(data) / n
	if channels <= 0 || size%channels != 0 {
		channels = 1
	}
	per := size / channels
	pick := func(v []float64, c int, def float64) float64 {
		switch len(v) {
		case 0:
			return def
		case 1:
			return v[0]
		}
		return v[c]
	}
	for c := 0; c < channels; c++ {
		mean, std := pick(p.Mean, c, 0), pick(p.Std, c, 1)
		// x' = x·a + b with a = scale/std, b = −mean/std: one FMA-friendly pass.
		a, b := float32(scale/std), float32(-mean/std)
		if a == 1 && b == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			row := data[i*size+c*per : i*size+(c+1)*per]
			for j, x := range row {
				row[j] = x*a + b
			}
		}
	}
}

// SolveShape fills the one unknown (≤ 0) dimension of a per-sample shape
// from width, the values per sample, when width is a multiple of the known
// dimensions' product. It returns the shape (a copy), the number of values
// it holds (equal to width when the shape fits) and whether it has several
// unknown dimensions, which cannot be solved.
func SolveShape(shape []int64, width int64) (solved []int64, known int64, several bool) {
	solved = append([]int64(nil), shape...)
	known, free := int64(1), -1
	for i, d := range solved {
		if d <= 0 {
			if free >= 0 {
				return solved, 0, true
			}
			free = i
		} else {
			known *= d
		}
	}
	if free >= 0 && width > 0 && width%known == 0 {
		solved[free] = width / known
		known = width
	}
	return solved, known, false
}
