package extract

import (
	"fmt"
	"strconv"
	"strings"
)

// Preprocess is what extract does to dataset values before the teacher sees
// them: x' = (x·Scale − Mean[c]) / Std[c], c the channel (the first
// per-sample axis), then a reshape to the model's per-sample shape. The zero
// value feeds values unchanged. It is recorded in the manifest.
type Preprocess struct {
	// Scale multiplies every value first; 0 means 1.
	Scale float64
	// Mean and Std are per channel, or one value for all; empty = 0 and 1.
	Mean, Std []float64
	// Shape is the per-sample shape fed to the model (without the batch
	// axis); nil = the model input's declared shape.
	Shape []int64
}

// IsZero reports whether p changes nothing.
func (p Preprocess) IsZero() bool {
	return (p.Scale == 0 || p.Scale == 1) && len(p.Mean) == 0 && len(p.Std) == 0 && p.Shape == nil
}

// Describe lists the steps as human-readable strings for the manifest.
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

// Validate checks the mean/std lists against the channel count and that no
// std is zero.
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

// Apply transforms data in place: n samples of per-sample size len/n with
// channels channels (values per channel = size/channels).
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

// ParseFloatList parses "0.5,0.25" or "1/255" style values (a fraction is
// allowed in each item).
func ParseFloatList(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, item := range strings.Split(s, ",") {
		v, err := ParseNumber(item)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ParseNumber parses a float or a fraction like "1/255".
func ParseNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if a, b, ok := strings.Cut(s, "/"); ok {
		x, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
		y, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
		if err1 != nil || err2 != nil || y == 0 {
			return 0, fmt.Errorf("bad number %q (want e.g. 0.0039 or 1/255)", s)
		}
		return x / y, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q (want e.g. 0.0039 or 1/255)", s)
	}
	return v, nil
}

// ParseShape parses "1,28,28" (no batch axis); -1 is allowed once.
func ParseShape(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int64
	free := 0
	for _, item := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(item), 10, 64)
		if err != nil || v == 0 || v < -1 || v > 1<<31 {
			return nil, fmt.Errorf("bad shape %q: want positive sizes like 1,28,28 (one -1 allowed)", s)
		}
		if v == -1 {
			free++
		}
		out = append(out, v)
	}
	if free > 1 {
		return nil, fmt.Errorf("bad shape %q: at most one -1", s)
	}
	return out, nil
}

// ParseShard parses "I/N" (0 ≤ I < N).
func ParseShard(s string) (index, count int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		index, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			count, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || count < 1 || index < 0 || index >= count {
		return 0, 0, fmt.Errorf("bad --shard %q: want I/N with 0 ≤ I < N, e.g. 0/4", s)
	}
	return index, count, nil
}
