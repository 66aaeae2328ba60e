package formats

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSchemaGolden pins the cache schema: a change here is a format change
// and needs a version bump. Regenerate with go test -run TestSchemaGolden -update.
func TestSchemaGolden(t *testing.T) {
	var sb strings.Builder
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range testConfigs {
			if !yield(k) {
				return
			}
		}
	}) {
		s, err := Schema(testConfigs[name])
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteString("== " + name + "\n" + s.String() + "\n")
	}
	golden := filepath.Join("testdata", "schema.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if sb.String() != string(want) {
		t.Errorf("schema changed; if intended, bump Version and run -update.\ngot:\n%s", sb.String())
	}
}

func TestConfigFromSchema(t *testing.T) {
	t.Parallel()
	for name, cfg := range testConfigs {
		s, err := Schema(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ConfigFromSchema(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, _ := cfg.normalize()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ConfigFromSchema = %+v, want %+v", name, got, want)
		}
	}
	if _, err := ConfigFromSchema(nil); !errors.Is(err, ErrSchema) {
		t.Errorf("nil schema: %v", err)
	}
}

func TestTopK(t *testing.T) {
	t.Parallel()
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		logits []float32
		k      int
		idx    []int32
		lse    float64 // NaN means "is NaN"
	}{
		{[]float32{1, 3, 2}, 2, []int32{1, 2}, math.Log(math.Exp(1) + math.Exp(3) + math.Exp(2))},
		{[]float32{5, 5, 1, 5}, 3, []int32{0, 1, 3}, math.Log(3*math.Exp(5) + math.Exp(1))}, // ties: lower id first
		{[]float32{0, nan, 2}, 3, []int32{2, 0, 1}, math.NaN()},                             // NaN last
		{[]float32{-1, inf, 0}, 1, []int32{1}, math.Inf(1)},
		{[]float32{1000, 999}, 1, []int32{0}, 1000 + math.Log(1+math.Exp(-1))}, // no overflow
	}
	for _, c := range cases {
		idx := make([]int32, c.k)
		val := make([]float32, c.k)
		lse := TopK(idx, val, c.logits)
		if !slices.Equal(idx, c.idx) {
			t.Errorf("TopK(%v, %d) ids %v, want %v", c.logits, c.k, idx, c.idx)
		}
		for j, id := range idx {
			if math.Float32bits(val[j]) != math.Float32bits(c.logits[id]) {
				t.Errorf("TopK(%v): val[%d] = %v, want %v", c.logits, j, val[j], c.logits[id])
			}
		}
		if math.IsNaN(c.lse) != math.IsNaN(float64(lse)) || !math.IsNaN(c.lse) && math.Abs(float64(lse)-c.lse) > 1e-5*math.Max(1, math.Abs(c.lse)) {
			t.Errorf("TopK(%v) logsumexp %v, want %v", c.logits, lse, c.lse)
		}
	}
}

// TestFloat16 checks the binary16 conversions: exact decoding of every bit
// pattern, and rounding to nearest (ties to even) against a float64
// reference that enumerates the two neighbouring binary16 values.
func TestFloat16(t *testing.T) {
	t.Parallel()
	for h := 0; h < 1<<16; h++ {
		f := f16ToF32(uint16(h))
		if f != f {
			if back := f32ToF16(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x", h, back)
			}
			continue
		}
		if back := f32ToF16(f); back != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
		// Reference decoding: sign * 2^(e-15) * (1 + m/1024), subnormal 2^-14 * m/1024.
		e, m := h>>10&0x1f, float64(h&0x3ff)
		var want float64
		switch {
		case e == 0x1f:
			want = math.Inf(1)
		case e == 0:
			want = math.Ldexp(m/1024, -14)
		default:
			want = math.Ldexp(1+m/1024, int(e)-15)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if float64(f) != want {
			t.Fatalf("f16ToF32(%#04x) = %v, want %v", h, f, want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		x := math.Float32frombits(rng.Uint32())
		if i%2 == 0 { // concentrate on the binary16 range
			x = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(40)-25)))
		}
		if x != x {
			continue
		}
		h := f32ToF16(x)
		got := float64(f16ToF32(h))
		if math.Abs(float64(x)) >= 65520 { // rounds to Inf (65504 + half an ulp of 32)
			if !math.IsInf(got, 0) {
				t.Fatalf("f32ToF16(%v) = %v, want Inf", x, got)
			}
			continue
		}
		// Neighbours of h; the result must be at least as close as either.
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7c00 == 0x7c00 || (h&0x7fff == 0 && nb == h-1) {
				continue
			}
			alt := float64(f16ToF32(nb))
			d, da := math.Abs(got-float64(x)), math.Abs(alt-float64(x))
			if da < d || da == d && h&1 == 1 {
				t.Fatalf("f32ToF16(%v) = %v (%#04x), but %v (%#04x) is nearer or even", x, got, h, alt, nb)
			}
		}
	}
}
