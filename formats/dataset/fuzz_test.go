package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// fuzzOptions keeps fuzzed inputs from asking for much memory.
// It is filled in as Open fills in a caller's options (the allocation
// limit included), since the targets call the decoders directly.
var fuzzOptions = (&Options{MaxInMemoryBytes: 1 << 20}).withDefaults()

// checkFuzzed exercises an opened dataset the way extract does: reads from
// the start, the end and the middle. A decoder may reject the bytes at
// Open or at Read, with an error of this package, but must not panic.
func checkFuzzed(t *testing.T, d Dataset, err error) {
	if err != nil {
		checkFuzzErr(t, err)
		return
	}
	defer d.Close()
	for _, c := range d.Columns() {
		if c.Width() < -1 {
			t.Fatalf("column %+v has a negative width", c)
		}
	}
	var b Batch
	n := d.Len()
	for _, start := range []int{0, n - 1, n / 2, 1} {
		err := d.Read(max(start, 0), 64, &b)
		if err == io.EOF {
			continue
		}
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		for _, c := range d.Columns() {
			if w := c.Width(); w >= 0 && len(b.Cols[c.Name]) != b.Len()*w {
				t.Fatalf("column %q: %d values for %d rows of width %d", c.Name, len(b.Cols[c.Name]), b.Len(), w)
			}
		}
		if d.Label() && len(b.Labels) != b.Len() {
			t.Fatalf("%d labels for %d rows", len(b.Labels), b.Len())
		}
	}
}

func checkFuzzErr(t *testing.T, err error) {
	for _, want := range []error{ErrFormat, ErrCorrupt, ErrUnsupported, ErrShape, ErrLimit, ErrColumn} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("error %v wraps none of the package's sentinel errors", err)
}

// fuzzOpen maps each fuzz target to the decoder it feeds.
var fuzzOpen = map[string]func(data []byte) (Dataset, error){
	"FuzzNPY": func(data []byte) (Dataset, error) {
		o := fuzzOptions
		return openNPY("fuzz.npy", bytes.NewReader(data), int64(len(data)), &o, nil)
	},
	"FuzzIDX": func(data []byte) (Dataset, error) {
		o := fuzzOptions
		x, err := openIDXArray("fuzz-idx3-ubyte", bytes.NewReader(data), int64(len(data)), o.MaxInMemoryBytes)
		if err != nil {
			return nil, err
		}
		// Pair the array with itself as labels when it has one value
		// per row, to fuzz the label path too.
		var y *denseArray
		if x.width == 1 {
			y = x
		}
		return openIDX(x, x.dims, &o, y)
	},
	"FuzzCSV": func(data []byte) (Dataset, error) {
		o := fuzzOptions
		return openCSV("fuzz.csv", data, &o)
	},
	"FuzzParquet": func(data []byte) (Dataset, error) {
		o := fuzzOptions
		return openParquet("fuzz.parquet", bytes.NewReader(data), &o)
	},
	"FuzzArrowFile": func(data []byte) (Dataset, error) {
		o := fuzzOptions
		return openIPC("fuzz.arrow", bytes.NewReader(data), int64(len(data)), &o, true)
	},
	"FuzzArrowStream": func(data []byte) (Dataset, error) {
		o := fuzzOptions
		return openIPC("fuzz.arrows", bytes.NewReader(data), int64(len(data)), &o, false)
	},
}

// fuzzDecoder runs the decoder of target on fuzzed bytes.
func fuzzDecoder(f *testing.F, target string) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := fuzzOpen[target](data)
		if err != nil {
			checkFuzzed(t, nil, err)
			return
		}
		checkFuzzed(t, d, nil)
	})
}

func FuzzNPY(f *testing.F)         { fuzzDecoder(f, "FuzzNPY") }
func FuzzIDX(f *testing.F)         { fuzzDecoder(f, "FuzzIDX") }
func FuzzCSV(f *testing.F)         { fuzzDecoder(f, "FuzzCSV") }
func FuzzParquet(f *testing.F)     { fuzzDecoder(f, "FuzzParquet") }
func FuzzArrowFile(f *testing.F)   { fuzzDecoder(f, "FuzzArrowFile") }
func FuzzArrowStream(f *testing.F) { fuzzDecoder(f, "FuzzArrowStream") }

// TestFuzzSeeds checks that the seeds open cleanly through their fuzz
// target's decoder and that each committed corpus exists; with -update it
// rewrites the corpora in testdata/fuzz.
func TestFuzzSeeds(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	seeds := map[string][][]byte{
		"FuzzNPY": {
			npyBytes(1, "<f4", false, []int{2, 3}, encodeDense(Float32, le, []float64{1, 2, 3, 4, 5, 6})),
			npyBytes(2, "|u1", false, []int{3}, []byte{1, 2, 3}),
			npyBytes(3, ">f2", false, []int{1, 2, 2}, encodeDense(Float16, be, []float64{1, -2, 0.5, 8})),
			npyBytes(1, "<i8", false, []int{2, 1}, encodeDense(Int64, le, []float64{-1, 7})),
		},
		"FuzzIDX": {
			idxBytes(0x08, []int{2, 2, 2}, []byte{0, 1, 2, 3, 4, 5, 6, 7}),
			gzipBytes(idxBytes(0x08, []int{3, 1, 2}, []byte{0, 255, 1, 254, 2, 253})),
			idxBytes(0x0D, []int{2, 2}, encodeDense(Float32, be, []float64{1.5, -2, 3, 4})),
			idxBytes(0x08, []int{3, 1}, []byte{1, 2, 3}),
		},
		"FuzzCSV": {
			[]byte("a,b,label\n1,2,0\n3.5,NaN,1\n"),
			[]byte("1,2,3\n4,5,6\n"),
			[]byte("x\n\"1\"\n-2e3\n"),
		},
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "image", Type: arrow.FixedSizeListOf(4, arrow.PrimitiveTypes.Uint8), Metadata: arrow.NewMetadata([]string{MetaShape}, []string{"[1,2,2]"})},
		{Name: "v", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	sc2 := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float64}, {Name: "b", Type: arrow.FixedWidthTypes.Float16}, {Name: "label", Type: arrow.PrimitiveTypes.Int32}}, nil)
	rec := recordFromJSON(t, memory.DefaultAllocator, sc, `[{"image":[0,1,2,3],"v":[1,2],"label":3},{"image":[4,5,6,7],"v":[3,4],"label":1},{"image":[8,9,10,11],"v":[5,6],"label":4}]`)
	defer rec.Release()
	rec2 := recordFromJSON(t, memory.DefaultAllocator, sc2, `[{"a":1,"b":2,"label":0},{"a":3,"b":4,"label":1}]`)
	defer rec2.Release()
	for name, format := range map[string]string{"FuzzParquet": "parquet", "FuzzArrowFile": "arrow", "FuzzArrowStream": "arrows"} {
		seeds[name] = [][]byte{encodeArrow(t, format, rec, 2), encodeArrow(t, format, rec2, 0)}
	}
	// An uncompressed, dictionary-free Parquet file lets mutations reach
	// the page decoders.
	var plain bytes.Buffer
	pw, err := pqarrow.NewFileWriter(sc, &plain, parquet.NewWriterProperties(parquet.WithDictionaryDefault(false)), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	seeds["FuzzParquet"] = append(seeds["FuzzParquet"], plain.Bytes())
	for name, files := range seeds {
		for i, data := range files {
			d, err := fuzzOpen[name](data)
			if err != nil {
				t.Errorf("%s seed %d: %v", name, i, err)
				continue
			}
			readAll(t, d, 2)
			d.Close()
		}
		dir := filepath.Join("testdata", "fuzz", name)
		if !*update {
			if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
				t.Errorf("%s has no seed corpus; run go test -run TestFuzzSeeds -update", dir)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, data := range files {
			corpus := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(corpus), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
