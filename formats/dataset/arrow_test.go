package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var arrowFormats = []string{"parquet", "arrow", "arrows"}

var arrowExt = map[string]string{"parquet": ".parquet", "arrow": ".arrow", "arrows": ".arrows"}

// openEncoded writes rec in format to a temp file and opens it.
func openEncoded(t *testing.T, format string, rec arrow.RecordBatch, per int, o *Options) (Dataset, error) {
	t.Helper()
	p := writeFile(t, t.TempDir(), "d"+arrowExt[format], encodeArrow(t, format, rec, per))
	return Open(p, o)
}

func TestArrowTensorDTypes(t *testing.T) {
	t.Parallel()
	types := []struct {
		dt   arrow.DataType
		want DType
	}{
		{arrow.PrimitiveTypes.Uint8, Uint8},
		{arrow.PrimitiveTypes.Int8, Int8},
		{arrow.PrimitiveTypes.Uint16, Uint16},
		{arrow.PrimitiveTypes.Int16, Int16},
		{arrow.PrimitiveTypes.Uint32, Uint32},
		{arrow.PrimitiveTypes.Int32, Int32},
		{arrow.PrimitiveTypes.Uint64, Uint64},
		{arrow.PrimitiveTypes.Int64, Int64},
		{arrow.FixedWidthTypes.Float16, Float16},
		{arrow.PrimitiveTypes.Float32, Float32},
		{arrow.PrimitiveTypes.Float64, Float64},
	}
	for _, format := range arrowFormats {
		for _, ty := range types {
			t.Run(format+"/"+ty.dt.String(), func(t *testing.T) {
				t.Parallel()
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				sc := arrow.NewSchema([]arrow.Field{
					{Name: "x", Type: arrow.FixedSizeListOf(3, ty.dt)},
					{Name: "label", Type: arrow.PrimitiveTypes.Int32},
				}, nil)
				rec := recordFromJSON(t, mem, sc, `[{"x":[1,2,3],"label":4},{"x":[4,5,6],"label":0},{"x":[7,8,100],"label":2}]`)
				defer rec.Release()
				d, err := openEncoded(t, format, rec, 2, &Options{Allocator: mem})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				c := d.Columns()
				if len(c) != 1 || c[0].Name != "x" || c[0].DType != ty.want || !slices.Equal(c[0].Shape, []int{3}) {
					t.Fatalf("Columns() = %+v", c)
				}
				b := readAll(t, d, 2)
				if want := []float32{1, 2, 3, 4, 5, 6, 7, 8, 100}; !eqFloats(b.Cols["x"], want) {
					t.Errorf("x = %v, want %v", b.Cols["x"], want)
				}
				if !slices.Equal(b.Labels, []int64{4, 0, 2}) {
					t.Errorf("labels = %v", b.Labels)
				}
			})
		}
	}
}

func TestArrowLayouts(t *testing.T) {
	t.Parallel()
	f32, f64, i32 := arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Int32
	shapeMeta := arrow.NewMetadata([]string{MetaShape}, []string{"[1,2,2]"})
	for _, tc := range []struct {
		name   string
		fields []arrow.Field
		rows   string
		opts   Options
		cols   []Column
		want   map[string][]float32
		labels []int64
	}{
		{
			name:   "list column",
			fields: []arrow.Field{{Name: "v", Type: arrow.ListOf(f32)}, {Name: "label", Type: arrow.PrimitiveTypes.Uint8}},
			rows:   `[{"v":[1,2],"label":1},{"v":[3,4],"label":2},{"v":[5,6],"label":3}]`,
			cols:   []Column{{"v", Float32, []int{2}}},
			want:   map[string][]float32{"v": {1, 2, 3, 4, 5, 6}},
			labels: []int64{1, 2, 3},
		},
		{
			name:   "nested fixed lists",
			fields: []arrow.Field{{Name: "m", Type: arrow.FixedSizeListOf(2, arrow.FixedSizeListOf(2, f64))}},
			rows:   `[{"m":[[1,2],[3,4]]},{"m":[[5,6],[7,8]]},{"m":[[9,10],[11,12]]}]`,
			cols:   []Column{{"m", Float64, []int{2, 2}}},
			want:   map[string][]float32{"m": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		},
		{
			name:   "list of fixed lists",
			fields: []arrow.Field{{Name: "m", Type: arrow.ListOf(arrow.FixedSizeListOf(2, i32))}},
			rows:   `[{"m":[[1,2]]},{"m":[[5,6]]},{"m":[[9,10]]}]`,
			cols:   []Column{{"m", Int32, []int{1, 2}}},
			want:   map[string][]float32{"m": {1, 2, 5, 6, 9, 10}},
		},
		{
			name:   "shape metadata",
			fields: []arrow.Field{{Name: "img", Type: arrow.FixedSizeListOf(4, f32), Metadata: shapeMeta}, {Name: "label", Type: arrow.PrimitiveTypes.Int64}},
			rows:   `[{"img":[1,2,3,4],"label":0},{"img":[5,6,7,8],"label":1},{"img":[9,10,11,12],"label":0}]`,
			cols:   []Column{{"img", Float32, []int{1, 2, 2}}},
			want:   map[string][]float32{"img": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
			labels: []int64{0, 1, 0},
		},
		{
			name:   "scalars combined",
			fields: []arrow.Field{{Name: "a", Type: f64}, {Name: "name", Type: arrow.BinaryTypes.String}, {Name: "b", Type: i32}, {Name: "label", Type: arrow.PrimitiveTypes.Float64}},
			rows:   `[{"a":0.5,"name":"x","b":1,"label":1},{"a":1.5,"name":"y","b":2,"label":0},{"a":2.5,"name":"z","b":3,"label":1}]`,
			cols:   []Column{{"input", Float64, []int{2}}},
			want:   map[string][]float32{"input": {0.5, 1, 1.5, 2, 2.5, 3}},
			labels: []int64{1, 0, 1},
		},
		{
			name:   "features chosen",
			fields: []arrow.Field{{Name: "a", Type: f32}, {Name: "b", Type: f32}, {Name: "c", Type: f32}, {Name: "t", Type: arrow.ListOf(f32)}},
			rows:   `[{"a":1,"b":2,"c":3,"t":[9]},{"a":4,"b":5,"c":6,"t":[8]},{"a":7,"b":8,"c":9,"t":[7]}]`,
			opts:   Options{Features: []string{"c", "a"}, FeatureName: "x"},
			cols:   []Column{{"t", Float32, []int{1}}, {"x", Float32, []int{2}}},
			want:   map[string][]float32{"x": {3, 1, 6, 4, 9, 7}, "t": {9, 8, 7}},
		},
		{
			name:   "scalars beside a tensor are ignored",
			fields: []arrow.Field{{Name: "id", Type: i32}, {Name: "t", Type: arrow.FixedSizeListOf(1, f32)}},
			rows:   `[{"id":1,"t":[9]},{"id":2,"t":[8]},{"id":3,"t":[7]}]`,
			cols:   []Column{{"t", Float32, []int{1}}},
			want:   map[string][]float32{"t": {9, 8, 7}},
		},
		{
			name:   "label disabled",
			fields: []arrow.Field{{Name: "a", Type: f32}, {Name: "label", Type: i32}},
			rows:   `[{"a":1,"label":2},{"a":3,"label":4},{"a":5,"label":6}]`,
			opts:   Options{Label: NoLabel},
			cols:   []Column{{"input", Float32, []int{2}}},
			want:   map[string][]float32{"input": {1, 2, 3, 4, 5, 6}},
		},
	} {
		for _, format := range arrowFormats {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				t.Parallel()
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				rec := recordFromJSON(t, mem, arrow.NewSchema(tc.fields, nil), tc.rows)
				defer rec.Release()
				o := tc.opts
				o.Allocator = mem
				d, err := openEncoded(t, format, rec, 2, &o)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				if got := d.Columns(); fmt.Sprint(got) != fmt.Sprint(tc.cols) {
					t.Errorf("Columns() = %v, want %v", got, tc.cols)
				}
				if d.Len() != 3 || d.Label() != (tc.labels != nil) {
					t.Errorf("Len() = %d, Label() = %v", d.Len(), d.Label())
				}
				b := readAll(t, d, 2)
				for name, want := range tc.want {
					if !eqFloats(b.Cols[name], want) {
						t.Errorf("%s = %v, want %v", name, b.Cols[name], want)
					}
				}
				if len(b.Cols) != len(tc.want) {
					t.Errorf("read columns %v, want %d", b.Cols, len(tc.want))
				}
				if !slices.Equal(b.Labels, tc.labels) {
					t.Errorf("labels = %v, want %v", b.Labels, tc.labels)
				}
			})
		}
	}
}

func TestArrowErrors(t *testing.T) {
	t.Parallel()
	f32 := arrow.PrimitiveTypes.Float32
	for _, tc := range []struct {
		name    string
		fields  []arrow.Field
		rows    string
		opts    Options
		openErr bool // the error comes from Open, not Read
		want    error
		message string
	}{
		{"ragged list", []arrow.Field{{Name: "v", Type: arrow.ListOf(f32)}},
			`[{"v":[1,2]},{"v":[3,4]},{"v":[5]}]`, Options{}, false, ErrShape, "want 2"},
		{"null row", []arrow.Field{{Name: "v", Type: arrow.ListOf(f32), Nullable: true}},
			`[{"v":[1,2]},{"v":null},{"v":[5,6]}]`, Options{}, false, ErrShape, "null"},
		{"null value", []arrow.Field{{Name: "v", Type: arrow.FixedSizeListOf(2, f32), Nullable: true}},
			`[{"v":[1,2]},{"v":[3,null]},{"v":[5,6]}]`, Options{}, false, ErrShape, "null"},
		{"null label", []arrow.Field{{Name: "a", Type: f32}, {Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true}},
			`[{"a":1,"label":1},{"a":2,"label":null},{"a":3,"label":1}]`, Options{}, false, ErrShape, "null"},
		{"fractional label", []arrow.Field{{Name: "a", Type: f32}, {Name: "label", Type: f32}},
			`[{"a":1,"label":1},{"a":2,"label":0.5},{"a":3,"label":1}]`, Options{}, false, ErrCorrupt, "not an integer"},
		{"string label", []arrow.Field{{Name: "a", Type: f32}, {Name: "label", Type: arrow.BinaryTypes.String}},
			`[{"a":1,"label":"x"}]`, Options{}, true, ErrColumn, "want integers"},
		{"missing label", []arrow.Field{{Name: "a", Type: f32}},
			`[{"a":1}]`, Options{Label: "y"}, true, ErrColumn, `"y"`},
		{"string feature", []arrow.Field{{Name: "a", Type: f32}, {Name: "s", Type: arrow.BinaryTypes.String}},
			`[{"a":1,"s":"x"}]`, Options{Features: []string{"a", "s"}}, true, ErrColumn, `"s"`},
		{"label as feature", []arrow.Field{{Name: "a", Type: f32}, {Name: "label", Type: arrow.PrimitiveTypes.Int64}},
			`[{"a":1,"label":1}]`, Options{Features: []string{"a", "label"}}, true, ErrColumn, "is the label"},
		{"missing feature", []arrow.Field{{Name: "a", Type: f32}},
			`[{"a":1}]`, Options{Features: []string{"b"}}, true, ErrColumn, `"b"`},
		{"no numbers", []arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}},
			`[{"s":"x"}]`, Options{}, true, ErrColumn, "no numeric"},
		{"name clash", []arrow.Field{{Name: "input", Type: arrow.ListOf(f32)}, {Name: "a", Type: f32}},
			`[{"input":[1],"a":1}]`, Options{Features: []string{"a"}}, true, ErrColumn, "FeatureName"},
	} {
		for _, format := range arrowFormats {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				t.Parallel()
				rec := recordFromJSON(t, memory.DefaultAllocator, arrow.NewSchema(tc.fields, nil), tc.rows)
				defer rec.Release()
				d, err := openEncoded(t, format, rec, 2, &tc.opts)
				if err == nil {
					defer d.Close()
					if tc.openErr {
						t.Fatal("Open succeeded")
					}
					var b Batch
					for r := 0; r < d.Len() && err == nil; r++ {
						err = d.Read(r, 1, &b)
					}
				} else if !tc.openErr {
					t.Fatalf("Open: %v", err)
				}
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
					t.Errorf("error = %v, want %v mentioning %q", err, tc.want, tc.message)
				}
			})
		}
	}
}

func TestArrowEmptyAndCorrupt(t *testing.T) {
	t.Parallel()
	sc := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)}, {Name: "label", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for _, format := range arrowFormats {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			rec := recordFromJSON(t, memory.DefaultAllocator, sc, `[]`)
			defer rec.Release()
			d, err := openEncoded(t, format, rec, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d.Len() != 0 || !slices.Equal(d.Columns()[0].Shape, []int{-1}) {
				t.Errorf("empty: Len() = %d, Columns() = %v", d.Len(), d.Columns())
			}
			d.Close()

			rec = recordFromJSON(t, memory.DefaultAllocator, sc, `[{"v":[1,2],"label":1},{"v":[3,4],"label":2}]`)
			defer rec.Release()
			data := encodeArrow(t, format, rec, 1)
			for _, cut := range []int{len(data) / 3, len(data) / 2, len(data) - 12} {
				p := writeFile(t, t.TempDir(), "d"+arrowExt[format], data[:cut])
				d, err := Open(p, nil)
				if err == nil {
					var b Batch
					for r := 0; r < d.Len() && err == nil; r++ {
						err = d.Read(r, 1, &b)
					}
					d.Close()
				}
				if err == nil && format != "arrows" {
					t.Errorf("truncated at %d of %d bytes: no error", cut, len(data))
				}
				if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
					t.Errorf("truncated at %d: error %v is neither ErrCorrupt nor ErrFormat", cut, err)
				}
			}
		})
	}
}

func TestArrowIPCCompressed(t *testing.T) {
	t.Parallel()
	sc := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64)}, {Name: "label", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for name, opt := range map[string]ipc.Option{"zstd": ipc.WithZstd(), "lz4": ipc.WithLZ4()} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", name, stream), func(t *testing.T) {
				t.Parallel()
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				rec := recordFromJSON(t, mem, sc, `[{"v":[1,2],"label":1},{"v":[3,4],"label":2},{"v":[5,6],"label":3}]`)
				defer rec.Release()
				var buf bytes.Buffer
				var w interface {
					Write(arrow.RecordBatch) error
					Close() error
				}
				ext := ".arrows"
				if stream {
					w = ipc.NewWriter(&buf, ipc.WithSchema(sc), opt)
				} else {
					var err error
					if w, err = ipc.NewFileWriter(&buf, ipc.WithSchema(sc), opt); err != nil {
						t.Fatal(err)
					}
					ext = ".arrow"
				}
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				d, err := Open(writeFile(t, t.TempDir(), "c"+ext, buf.Bytes()), &Options{Allocator: mem})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				b := readAll(t, d, 2)
				if !eqFloats(b.Cols["v"], []float32{1, 2, 3, 4, 5, 6}) || !slices.Equal(b.Labels, []int64{1, 2, 3}) {
					t.Errorf("read %v %v", b.Cols["v"], b.Labels)
				}
			})
		}
	}
}
