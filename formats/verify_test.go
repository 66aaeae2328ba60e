package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// editManifest rewrites dir/manifest.json through f.
func editManifest(t *testing.T, dir string, f func(m *Manifest)) {
	t.Helper()
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	f(&m)
	data, _ := json.Marshal(&m)
	if err := os.WriteFile(filepath.Join(dir, ManifestName), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadCache(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["f16-label"]
	for _, format := range []Format{FormatArrow, FormatParquet} {
		opts := &WriterOptions{Format: format, RowsPerBatch: 4}
		var part1 string
		fresh := func(t *testing.T) string {
			dir := t.TempDir()
			writeCache(t, dir, testManifest(0, 1), cfg, opts, 0, 6, 6)
			part1 = partFile(t, dir, 1)
			return dir
		}
		t.Run(string(format)+"/missing part", func(t *testing.T) {
			dir := fresh(t)
			os.Remove(filepath.Join(dir, part1))
			_, err := Open(dir)
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, os.ErrNotExist) || filepath.Base(ce.Path) != part1 {
				t.Fatalf("Open = %v", err)
			}
		})
		t.Run(string(format)+"/truncated part", func(t *testing.T) {
			dir := fresh(t)
			path := filepath.Join(dir, part1)
			data, _ := os.ReadFile(path)
			os.WriteFile(path, data[:len(data)-10], 0o644)
			if _, err := Open(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "bytes") {
				t.Fatalf("Open = %v", err)
			}
			// Without the manifest's size check, the part itself does not decode.
			for _, n := range []int{0, 3, 8, len(data) / 2, len(data) - 10} {
				if _, err := readAllParts(data[:n]); !errors.Is(err, ErrCorrupt) {
					t.Errorf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
				}
			}
		})
		t.Run(string(format)+"/flipped byte", func(t *testing.T) {
			dir := fresh(t)
			path := filepath.Join(dir, part1)
			data, _ := os.ReadFile(path)
			data[len(data)/3] ^= 0x55
			os.WriteFile(path, data, 0o644)
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rep, err := Verify(c)
			if !errors.Is(err, ErrCorrupt) || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Error(), "sha256") {
				t.Fatalf("Verify = %+v, %v", rep, err)
			}
		})
		t.Run(string(format)+"/manifest rows disagree", func(t *testing.T) {
			dir := fresh(t)
			editManifest(t, dir, func(m *Manifest) { m.Parts[1].Rows = 5; m.Rows = 11 })
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rep, err := Verify(c)
			var ce *CorruptError
			if !errors.As(err, &ce) || len(rep.Problems) != 1 || !strings.Contains(err.Error(), "rows") {
				t.Fatalf("Verify = %+v, %v", rep, err)
			}
		})
		t.Run(string(format)+"/manifest sha256 disagrees", func(t *testing.T) {
			dir := fresh(t)
			editManifest(t, dir, func(m *Manifest) { m.Parts[0].SHA256 = strings.Repeat("0", 64) })
			c, _ := Open(dir)
			defer c.Close()
			if rep, err := Verify(c); !errors.Is(err, ErrCorrupt) || len(rep.Problems) != 1 {
				t.Fatalf("Verify = %+v, %v", rep, err)
			}
		})
		t.Run(string(format)+"/manifest schema disagrees", func(t *testing.T) {
			dir := fresh(t)
			editManifest(t, dir, func(m *Manifest) { m.Settings.Dtype = Float32 })
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var b Batch
			if err := c.ReadBatch(0, &b); !errors.Is(err, ErrSchema) {
				t.Fatalf("ReadBatch = %v, want ErrSchema", err)
			}
			if _, err := Verify(c); !errors.Is(err, ErrSchema) {
				t.Fatalf("Verify = %v, want ErrSchema", err)
			}
		})
		t.Run(string(format)+"/manifest other than embedded", func(t *testing.T) {
			dir := fresh(t)
			editManifest(t, dir, func(m *Manifest) { m.Teacher.Opset = 99 })
			c, _ := Open(dir)
			defer c.Close()
			var b Batch
			if err := c.ReadBatch(0, &b); !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "embedded manifest") {
				t.Fatalf("ReadBatch = %v", err)
			}
		})
		t.Run(string(format)+"/batch too large", func(t *testing.T) {
			dir := fresh(t)
			c, _ := OpenWithOptions(&ReaderOptions{MaxBatchBytes: 100}, dir)
			defer c.Close()
			var b Batch
			if err := c.ReadBatch(0, &b); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ReadBatch = %v, want ErrTooLarge", err)
			}
		})
	}
}

// readAllParts decodes every batch of an in-memory part.
func readAllParts(data []byte) (int, error) {
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var b Batch
	rows := 0
	for i := 0; i < r.NumBatches(); i++ {
		if err := r.ReadBatch(i, &b); err != nil {
			return rows, err
		}
		rows += b.Len()
	}
	return rows, nil
}

func TestVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeCache(t, dir, testManifest(0, 1), testConfigs["f32"], nil, 0, 2)
	orig, _ := ReadManifest(dir)
	for _, v := range []string{"2.0", "10.3", "abc", "1", "", "0.9", "-1.0", "1.-1", "1.0.1", "+1.0"} {
		m := orig
		m.Version = v
		data, _ := json.Marshal(&m)
		os.WriteFile(filepath.Join(dir, ManifestName), data, 0o644)
		_, err := Open(dir)
		if !errors.Is(err, ErrVersion) {
			t.Errorf("version %q: %v, want ErrVersion", v, err)
		}
		if v == "2.0" && !(strings.Contains(err.Error(), "read version 2.0") && strings.Contains(err.Error(), "supports 1.x")) {
			t.Errorf("version 2.0: message %q does not say which version was read and which is supported", err)
		}
	}
	// A newer MINOR version is readable, and may carry fields we do not know.
	data, _ := json.Marshal(&orig)
	var raw map[string]any
	json.Unmarshal(data, &raw)
	raw["version"] = "1.7"
	raw["future_field"] = map[string]any{"x": 1}
	data, _ = json.Marshal(raw)
	if _, err := ParseManifest(data); err != nil {
		t.Errorf("version 1.7: %v", err)
	}
	// A newer version in a part's schema metadata.
	sc, _ := Schema(Config{Classes: 1})
	md := sc.Metadata()
	vals := md.Values()
	vals[md.FindKey(MetaVersion)] = "9.0"
	md = arrow.NewMetadata(md.Keys(), vals)
	sc = arrow.NewSchema(sc.Fields(), &md)
	rb := array.NewInt64Builder(memory.DefaultAllocator)
	rb.Append(0)
	lb := array.NewFixedSizeListBuilderWithField(memory.DefaultAllocator, 1, arrow.Field{Name: "item", Type: arrow.PrimitiveTypes.Float32})
	lb.Append(true)
	lb.ValueBuilder().(*array.Float32Builder).Append(1)
	part := writeRawIPC(t, sc, rb.NewArray(), lb.NewArray())
	if _, err := NewReader(bytes.NewReader(part), int64(len(part)), nil); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "9.0") {
		t.Errorf("part version 9.0: %v, want ErrVersion", err)
	}
}

func TestBadManifest(t *testing.T) {
	t.Parallel()
	good := testManifest(0, 1)
	cw, err := CreateCache(t.TempDir(), good, testConfigs["hidden"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.WritePart(makeBatch(testConfigs["hidden"], 0, 3, 1)); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(m *Manifest){
		"score kind":  func(m *Manifest) { m.ScoreKind = "probs" },
		"classes":     func(m *Manifest) { m.Classes = 0 },
		"top-k":       func(m *Manifest) { m.Settings.TopK = 99 },
		"shard":       func(m *Manifest) { m.Settings.ShardIndex = 1 },
		"format":      func(m *Manifest) { m.Settings.Format = "csv" },
		"compression": func(m *Manifest) { m.Settings.Compression = "gzip" },
		"rows":        func(m *Manifest) { m.Rows = 4 },
		"first row":   func(m *Manifest) { m.Parts[0].FirstRow = 1 },
		"path escape": func(m *Manifest) { m.Parts[0].File = "../part-00000.arrow" },
		"extension":   func(m *Manifest) { m.Parts[0].File = "part-00000.parquet" },
		"sha256":      func(m *Manifest) { m.Parts[0].SHA256 = "xyz" },
		"hidden":      func(m *Manifest) { m.Settings.Hidden[0].Shape = []int64{0} },
		"dup hidden":  func(m *Manifest) { m.Settings.Hidden[1].Name = m.Settings.Hidden[0].Name },
		"keep input":  func(m *Manifest) { m.Settings.KeepInput = true },
	}
	for name, mutate := range cases {
		m := cw.Manifest()
		m.Settings.Hidden = slices.Clone(m.Settings.Hidden)
		mutate(&m)
		data, _ := json.Marshal(&m)
		if _, err := ParseManifest(data); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSchema) {
			t.Errorf("%s: ParseManifest = %v", name, err)
		}
	}
	for _, data := range []string{"", "null", "[]", `{"version":1}`, `{"version":"1.0"`, `{"version":"1.0","classes":"x"}`} {
		if _, err := ParseManifest([]byte(data)); err == nil {
			t.Errorf("ParseManifest(%q) succeeded", data)
		}
	}
	if _, err := ReadManifest(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadManifest of empty dir: %v", err)
	}
}

func TestNonFinite(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"f32", "f16-label", "topk-f32"} {
		cfg := testConfigs[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cw, err := CreateCache(dir, testManifest(0, 1), cfg, &WriterOptions{RowsPerBatch: 8})
			if err != nil {
				t.Fatal(err)
			}
			b := makeBatch(Config{Classes: cfg.Classes, HasLabel: cfg.HasLabel}, 500, 30, 1)
			bad := []int{3, 4, 17, 29}
			b.Logits[3*10+2] = float32(math.NaN())
			b.Logits[4*10+0] = float32(math.Inf(1))
			b.Logits[17*10+9] = float32(math.Inf(-1))
			b.Logits[29*10+5] = 1e6 // overflows float16 to +Inf; in float32 it is fine
			if cfg.ScoreDtype != Float16 {
				b.Logits[29*10+5] = float32(math.NaN())
			}
			if _, err := cw.WritePart(b); err != nil { // top-k derived from full logits
				t.Fatal(err)
			}
			cw.Close()
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rep, err := Verify(c)
			want := []int64{}
			for _, r := range bad {
				want = append(want, 500+int64(r))
			}
			if cfg.TopK > 0 {
				// -Inf in one class does not reach the top-k or logsumexp.
				want = slices.DeleteFunc(want, func(r int64) bool { return r == 517 })
			}
			if !errors.Is(err, ErrCorrupt) || rep.NonFinite != int64(len(want)) || !slices.Equal(rep.NonFiniteRows, want) {
				t.Fatalf("Verify = %+v, %v; want rows %v", rep, err, want)
			}
			if !strings.Contains(err.Error(), "NaN or Inf") {
				t.Errorf("error %q", err)
			}
		})
	}
}

// writeRawIPC writes an Arrow IPC file with an arbitrary schema and one
// record of the given columns.
func writeRawIPC(t *testing.T, schema *arrow.Schema, cols ...arrow.Array) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	rec := array.NewRecordBatch(schema, cols, int64(cols[0].Len()))
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func TestWrongColumns(t *testing.T) {
	t.Parallel()
	mem := memory.NewGoAllocator()
	md := arrow.NewMetadata([]string{MetaVersion, MetaClasses, MetaScoreDtype, MetaTopK}, []string{"1.0", "3", "float32", "0"})
	rows := func() arrow.Array {
		b := array.NewInt64Builder(mem)
		b.AppendValues([]int64{0, 1}, nil)
		return b.NewArray()
	}
	list := func(width int32, elem arrow.DataType, vals []float64) arrow.Array {
		b := array.NewFixedSizeListBuilder(mem, width, elem)
		defer b.Release()
		vb := b.ValueBuilder()
		for i, v := range vals {
			if i%int(width) == 0 {
				b.Append(true)
			}
			switch vb := vb.(type) {
			case *array.Float64Builder:
				vb.Append(v)
			case *array.Float32Builder:
				vb.Append(float32(v))
			}
		}
		return b.NewArray()
	}
	six := []float64{1, 2, 3, 4, 5, 6}
	cases := map[string]struct {
		schema *arrow.Schema
		cols   []arrow.Array
	}{
		"float64 logits": {
			arrow.NewSchema([]arrow.Field{{Name: "row", Type: arrow.PrimitiveTypes.Int64}, {Name: "logits", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float64)}}, &md),
			[]arrow.Array{rows(), list(3, arrow.PrimitiveTypes.Float64, six)},
		},
		"wrong width": {
			arrow.NewSchema([]arrow.Field{{Name: "row", Type: arrow.PrimitiveTypes.Int64}, {Name: "logits", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)}}, &md),
			[]arrow.Array{rows(), list(2, arrow.PrimitiveTypes.Float32, []float64{1, 2, 3, 4})},
		},
		"missing logits": {
			arrow.NewSchema([]arrow.Field{{Name: "row", Type: arrow.PrimitiveTypes.Int64}}, &md),
			[]arrow.Array{rows()},
		},
		"extra column": {
			arrow.NewSchema([]arrow.Field{{Name: "row", Type: arrow.PrimitiveTypes.Int64}, {Name: "logits", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32)}, {Name: "other", Type: arrow.PrimitiveTypes.Int64}}, &md),
			[]arrow.Array{rows(), list(3, arrow.PrimitiveTypes.Float32, six), rows()},
		},
		"row not int64": {
			arrow.NewSchema([]arrow.Field{{Name: "row", Type: arrow.PrimitiveTypes.Float32}, {Name: "logits", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32)}}, &md),
			[]arrow.Array{list(3, arrow.PrimitiveTypes.Float32, six).(*array.FixedSizeList).ListValues(), list(3, arrow.PrimitiveTypes.Float32, six)},
		},
		"no metadata": {
			arrow.NewSchema([]arrow.Field{{Name: "row", Type: arrow.PrimitiveTypes.Int64}, {Name: "logits", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32)}}, nil),
			[]arrow.Array{rows(), list(3, arrow.PrimitiveTypes.Float32, six)},
		},
	}
	for name, tc := range cases {
		if name == "row not int64" {
			tc.cols[0] = array.NewSlice(tc.cols[0], 0, 2)
		}
		data := writeRawIPC(t, tc.schema, tc.cols...)
		_, err := NewReader(bytes.NewReader(data), int64(len(data)), nil)
		if !errors.Is(err, ErrSchema) {
			t.Errorf("%s: NewReader = %v, want ErrSchema", name, err)
		}
	}
	// Nulls are refused at read time.
	// (a nullable list, which the reader accepts as a type)
	sc0, _ := Schema(Config{Classes: 3})
	meta := sc0.Metadata()
	sc := arrow.NewSchema([]arrow.Field{sc0.Field(0), {Name: "logits", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32), Nullable: true}}, &meta)
	lb := array.NewFixedSizeListBuilder(mem, 3, arrow.PrimitiveTypes.Float32)
	lb.AppendNull()
	lb.Append(true)
	lb.ValueBuilder().(*array.Float32Builder).AppendValues([]float32{1, 2, 3}, nil)
	data := writeRawIPC(t, sc, rows(), lb.NewArray())
	if _, err := readAllParts(data); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "null") {
		t.Errorf("nulls: %v", err)
	}
}

func TestWriterRejects(t *testing.T) {
	t.Parallel()
	cfg := Config{Classes: 4, TopK: 2, HasLabel: true, Hidden: []TensorSpec{{Name: "h", Shape: []int64{3}}}}
	ok := makeBatch(cfg, 0, 2, 1)
	cases := map[string]func(b *Batch){
		"labels":      func(b *Batch) { b.Labels = b.Labels[:1] },
		"hidden":      func(b *Batch) { b.Hidden["h"] = b.Hidden["h"][:5] },
		"no hidden":   func(b *Batch) { b.Hidden = nil },
		"topk range":  func(b *Batch) { b.TopKIndex[0] = 4 },
		"topk order":  func(b *Batch) { b.TopKLogit[0], b.TopKLogit[1] = b.TopKLogit[1]-1, b.TopKLogit[0] },
		"no topk lse": func(b *Batch) { b.LogSumExp = nil },
	}
	for name, mutate := range cases {
		b := ok.Clone()
		mutate(b)
		w, err := NewWriter(&bytes.Buffer{}, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(b); err == nil {
			t.Errorf("%s: Write succeeded", name)
		}
		w.Close()
	}
	bad := []Config{
		{}, {Classes: 3, TopK: 4}, {Classes: 3, TopK: -1}, {Classes: 3, ScoreDtype: "bf16"},
		{Classes: 3, Inputs: []TensorSpec{{Name: "x", Shape: []int64{2}, Dtype: Float16}}},
		{Classes: 3, Hidden: []TensorSpec{{Name: "", Shape: []int64{2}}}},
		{Classes: 3, Hidden: []TensorSpec{{Name: "a\nb", Shape: []int64{2}}}},
		{Classes: 3, Hidden: []TensorSpec{{Name: "h", Shape: []int64{1 << 20, 1 << 20}}}},
	}
	for _, c := range bad {
		if _, err := Schema(c); !errors.Is(err, ErrSchema) {
			t.Errorf("Schema(%+v) = %v, want ErrSchema", c, err)
		}
	}
	for _, o := range []WriterOptions{{Format: "csv"}, {Compression: "gzip"}, {RowsPerBatch: -1}} {
		if _, err := NewWriter(&bytes.Buffer{}, cfg, &o); err == nil {
			t.Errorf("NewWriter with %+v succeeded", o)
		}
	}
}

// TestMutatedParts decodes randomly damaged copies of the fuzz seeds: every
// outcome must be a decoded batch or an error of this package (go test
// -fuzz FuzzReader explores further).
func TestMutatedParts(t *testing.T) {
	t.Parallel()
	seeds := fuzzSeedParts(t)
	names := slices.Sorted(maps.Keys(seeds))
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1000
	if testing.Short() {
		n = 100
	}
	for it := 0; it < n; it++ {
		for _, name := range names {
			data := bytes.Clone(seeds[name])
			for k := 0; k < 1+rng.IntN(4); k++ {
				i := rng.IntN(len(data))
				switch rng.IntN(4) {
				case 0:
					data[i] ^= byte(1 << rng.IntN(8))
				case 1:
					data[i] = byte(rng.IntN(256))
				case 2:
					data[i] = 0xff
				case 3:
					data = append(data[:i], data[min(len(data), i+1+rng.IntN(8)):]...)
				}
			}
			_, err := readAllParts(data)
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSchema) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s mutation %d: unexpected error kind: %v", name, it, err)
			}
		}
	}
}
