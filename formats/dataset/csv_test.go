package dataset

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestCSV(t *testing.T) {
	t.Parallel()
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name   string
		text   string
		opts   Options
		col    Column
		want   []float32
		labels []int64 // nil: no label
	}{
		{"header with label", "a,label,b\n1,3,2\n4,5,6.5\n", Options{},
			Column{"input", Float32, []int{2}}, []float32{1, 2, 4, 6.5}, []int64{3, 5}},
		{"no header", "1,2,3\n4,5,6\n", Options{},
			Column{"input", Float32, []int{3}}, []float32{1, 2, 3, 4, 5, 6}, nil},
		{"no header, label by index", "1,2,3\n4,5,6\n", Options{Label: "2"},
			Column{"input", Float32, []int{2}}, []float32{1, 2, 4, 5}, []int64{3, 6}},
		{"features chosen", "a,b,c,y\n1,2,3,0\n4,5,6,1\n", Options{Label: "y", Features: []string{"c", "a"}, FeatureName: "x"},
			Column{"x", Float32, []int{2}}, []float32{3, 1, 6, 4}, []int64{0, 1}},
		{"no label", "a,label\n1,2\n", Options{Label: NoLabel},
			Column{"input", Float32, []int{2}}, []float32{1, 2}, nil},
		{"nan and spaces, float label", "a, b,label\nNaN, 1e3, 2.0\n", Options{},
			Column{"input", Float32, []int{2}}, []float32{nan, 1000}, []int64{2}},
		{"header only", "a,b\n", Options{},
			Column{"input", Float32, []int{2}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, t.TempDir(), "d.csv", []byte(tc.text))
			d, err := Open(p, &tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			c := d.Columns()[0]
			if c.Name != tc.col.Name || !slices.Equal(c.Shape, tc.col.Shape) {
				t.Errorf("column = %+v, want %+v", c, tc.col)
			}
			if d.Label() != (tc.labels != nil) {
				t.Errorf("Label() = %v", d.Label())
			}
			b := readAll(t, d, 1)
			if !eqFloats(b.Cols[c.Name], tc.want) && !(len(tc.want) == 0 && len(b.Cols[c.Name]) == 0) {
				t.Errorf("values = %v, want %v", b.Cols[c.Name], tc.want)
			}
			if !slices.Equal(b.Labels, tc.labels) {
				t.Errorf("labels = %v, want %v", b.Labels, tc.labels)
			}
		})
	}
}

func TestCSVErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		opts       Options
		want       error
		message    string
	}{
		{"empty", "", Options{}, ErrCorrupt, "empty"},
		{"ragged", "a,b\n1,2\n3\n", Options{}, ErrShape, "line 3 has 1 fields"},
		{"text value", "a,b\n1,2\n3,x\n", Options{}, ErrCorrupt, `line 3 column "b"`},
		{"empty value", "a,b\n1,\n", Options{}, ErrCorrupt, "not a number"},
		{"label not int", "a,label\n1,2.5\n", Options{}, ErrCorrupt, "label"},
		{"missing label", "a,b\n1,2\n", Options{Label: "y"}, ErrColumn, `"y"`},
		{"missing feature", "a,b\n1,2\n", Options{Features: []string{"c"}}, ErrColumn, `"c"`},
		{"only label", "label\n1\n", Options{}, ErrColumn, "no feature"},
		{"bad quote", "a,b\n\"1,2\n", Options{}, ErrCorrupt, "quote"},
		{"too big", "a,b\n1,2\n", Options{MaxInMemoryBytes: 4}, ErrLimit, "MaxInMemoryBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := Open(writeFile(t, t.TempDir(), "d.csv", []byte(tc.text)), &tc.opts)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Open error = %v, want %v mentioning %q", err, tc.want, tc.message)
			}
		})
	}
}
