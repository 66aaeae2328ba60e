package dataset

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/distill-ml/distill/internal/s3test"
	"github.com/distill-ml/distill/internal/store"
)

// The tests in this file use s3test, which sets the process environment:
// they must not be parallel.

// remoteCase is one dataset file written locally and copied to the fake
// S3 (with its labels file, if any).
type remoteCase struct {
	name   string
	files  map[string][]byte // base name → bytes; the first key sorted is not special
	data   string            // base name of the data file
	labels string            // base name of an explicit labels file, or ""
	opts   Options
}

// remoteCases returns a dataset of every format Open reads, each with
// several rows and a label.
func remoteCases(t *testing.T) []remoteCase {
	mem := memory.DefaultAllocator
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32)},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	var rows []string
	for i := range 50 {
		rows = append(rows, fmt.Sprintf(`{"x": [%d.5, %d, -%d], "label": %d}`, i, 2*i, i, i%7))
	}
	rec := recordFromJSON(t, mem, sc, "["+strings.Join(rows, ",")+"]")
	defer rec.Release()
	var csv strings.Builder
	csv.WriteString("a,b,label\n")
	for i := range 40 {
		fmt.Fprintf(&csv, "%d,%g,%d\n", i, float64(i)/3, i%5)
	}
	pix := make([]byte, 12*4*5)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	lab := make([]byte, 12)
	for i := range lab {
		lab[i] = byte(i % 10)
	}
	npyX := npyBytes(1, "<f4", false, []int{12, 2, 5}, encodeDense(Float32, binary.LittleEndian, seq(120)))
	npyY := npyBytes(1, "<i8", false, []int{12}, encodeDense(Int64, binary.LittleEndian, seq(12)))
	return []remoteCase{
		{name: "parquet", files: map[string][]byte{"d.parquet": encodeArrow(t, "parquet", rec, 16)}, data: "d.parquet"},
		{name: "arrow", files: map[string][]byte{"d.arrow": encodeArrow(t, "arrow", rec, 16)}, data: "d.arrow"},
		{name: "arrows", files: map[string][]byte{"d.arrows": encodeArrow(t, "arrows", rec, 16)}, data: "d.arrows"},
		{name: "feather detected by content", files: map[string][]byte{"d.bin": encodeArrow(t, "arrow", rec, 0)}, data: "d.bin"},
		{name: "csv", files: map[string][]byte{"d.csv": []byte(csv.String())}, data: "d.csv"},
		{name: "npy with labels", files: map[string][]byte{"x.npy": npyX, "y.npy": npyY}, data: "x.npy", labels: "y.npy"},
		{name: "idx with sibling labels", files: map[string][]byte{
			"t-images-idx3-ubyte": idxBytes(0x08, []int{12, 4, 5}, pix),
			"t-labels-idx1-ubyte": idxBytes(0x08, []int{12}, lab),
		}, data: "t-images-idx3-ubyte"},
		{name: "gzip idx with sibling labels", files: map[string][]byte{
			"g-images-idx3-ubyte.gz": gzipBytes(idxBytes(0x08, []int{12, 4, 5}, pix)),
			"g-labels-idx1-ubyte.gz": gzipBytes(idxBytes(0x08, []int{12}, lab)),
		}, data: "g-images-idx3-ubyte.gz"},
	}
}

// seq returns 0, 1, ..., n-1.
func seq(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i)
	}
	return v
}

// TestRemoteFormats reads every format from s3:// and from the same bytes
// on disk: the columns, rows, labels, Files (the locations as given) and
// FileSHA256 of each agree.
func TestRemoteFormats(t *testing.T) {
	s := s3test.Start(t)
	for _, tc := range remoteCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prefix := "formats/" + strings.ReplaceAll(tc.name, " ", "-")
			for name, data := range tc.files {
				writeFile(t, dir, name, data)
				s.Put(t, prefix+"/"+name, data)
			}
			open := func(base string) (Dataset, []string) {
				t.Helper()
				o := tc.opts
				if tc.labels != "" {
					o.Labels = store.Join(base, tc.labels)
				}
				d, err := Open(store.Join(base, tc.data), &o)
				if err != nil {
					t.Fatalf("Open %s: %v", base, err)
				}
				t.Cleanup(func() { d.Close() })
				return d, d.Files()
			}
			local, lfiles := open(dir)
			remote, rfiles := open(s3test.Prefix(prefix))
			if local.Len() == 0 || remote.Len() != local.Len() || remote.Label() != local.Label() || !local.Label() {
				t.Fatalf("remote: %d rows, label %v; local: %d rows, label %v", remote.Len(), remote.Label(), local.Len(), local.Label())
			}
			if !reflect.DeepEqual(remote.Columns(), local.Columns()) {
				t.Errorf("remote columns %+v, local %+v", remote.Columns(), local.Columns())
			}
			lb, rb := readAll(t, local, 7), readAll(t, remote, 7)
			if !reflect.DeepEqual(lb.Rows, rb.Rows) || !reflect.DeepEqual(lb.Labels, rb.Labels) {
				t.Errorf("rows or labels differ: remote %v %v, local %v %v", rb.Rows, rb.Labels, lb.Rows, lb.Labels)
			}
			for name, v := range lb.Cols {
				if !eqFloats(v, rb.Cols[name]) {
					t.Errorf("column %s differs", name)
				}
			}
			if len(rfiles) != len(lfiles) || len(rfiles) == 0 {
				t.Fatalf("Files: remote %v, local %v", rfiles, lfiles)
			}
			for i, f := range rfiles {
				if !strings.HasPrefix(f, s3test.Prefix(prefix)+"/") {
					t.Errorf("remote Files()[%d] = %s, want a location below %s", i, f, s3test.Prefix(prefix))
				}
				rs, err := FileSHA256(f)
				if err != nil {
					t.Fatal(err)
				}
				ls, err := FileSHA256(lfiles[i])
				if err != nil {
					t.Fatal(err)
				}
				if rs != ls {
					t.Errorf("FileSHA256(%s) = %s, local %s", f, rs, ls)
				}
			}
		})
	}
}

// rangeLog records the GET requests the fake S3 serves for one key.
type rangeLog struct {
	mu     sync.Mutex
	key    string
	whole  int   // GETs without a Range header
	ranged int64 // bytes asked for by ranged GETs
}

func (l *rangeLog) hook(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/"+l.key) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	rg := r.Header.Get("Range")
	lo, hi, ok := strings.Cut(strings.TrimPrefix(rg, "bytes="), "-")
	a, err1 := strconv.ParseInt(lo, 10, 64)
	b, err2 := strconv.ParseInt(hi, 10, 64)
	if rg == "" || !ok || err1 != nil || err2 != nil {
		l.whole++
	} else {
		l.ranged += b - a + 1
	}
	return false
}

// TestRemoteColumnarRanges reads a row in the middle of a Parquet and an
// Arrow IPC file of many megabytes on S3: the readers go through
// store.File's ranges, so no GET fetches the whole object (as a download
// to a temporary file would). The bytes fetched are bounded: a Parquet
// file's once (a record batch of up to 16 MiB is decoded from the row's
// group on), an IPC file's at most twice (the message headers are
// verified first, and store.File fetches ReadAhead bytes per miss, so
// the scan touches every range of the file; then the batches).
func TestRemoteColumnarRanges(t *testing.T) {
	s := s3test.Start(t)
	const rows, width = 3072, 1024 // 12 MiB of float32, incompressible
	sc := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.FixedSizeListOf(width, arrow.PrimitiveTypes.Float32)}}, nil)
	r := rand.New(rand.NewPCG(1, 2))
	lb := array.NewFixedSizeListBuilder(memory.DefaultAllocator, width, arrow.PrimitiveTypes.Float32)
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.Float32Builder)
	for range rows {
		lb.Append(true)
		for range width {
			vb.Append(r.Float32())
		}
	}
	col := lb.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(sc, []arrow.Array{col}, rows)
	defer rec.Release()
	for _, tc := range []struct {
		format string
		times  int64
	}{{"parquet", 1}, {"arrow", 2}} {
		format := tc.format
		t.Run(format, func(t *testing.T) {
			data := encodeArrow(t, format, rec, 128)
			if len(data) < 2*store.ReadAhead {
				t.Fatalf("the %s file is %d bytes; the test needs several read-ahead buffers", format, len(data))
			}
			key := "ranges/big." + format
			s.Put(t, key, data)
			log := &rangeLog{key: key}
			s.Hook = log.hook
			defer func() { s.Hook = nil }()
			d, err := Open(s3test.Prefix(key), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var b Batch
			if err := d.Read(rows/2, 1, &b); err != nil || b.Len() != 1 {
				t.Fatalf("Read: %v, %d rows", err, b.Len())
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if limit := tc.times*int64(len(data)) + 2*store.ReadAhead; log.whole > 0 || log.ranged == 0 || log.ranged > limit {
				t.Errorf("%d whole-object GETs, %d bytes in ranges of a %d-byte object: want ranges only, at most %d bytes", log.whole, log.ranged, len(data), limit)
			}
		})
	}
}

// TestRemoteDocuments reads text, JSONL, Parquet and Arrow text files
// from S3: the documents are the local file's, and a token dataset made
// from the remote inputs records their sha256 and sizes as the local run
// does (and the same windows).
func TestRemoteDocuments(t *testing.T) {
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := tinyStories(t, 30)
	s := s3test.Start(t)
	dir := t.TempDir()
	var jsonl strings.Builder
	ptrs := make([]*string, len(docs))
	for i, d := range docs {
		fmt.Fprintf(&jsonl, "{\"text\": %q}\n", d)
		ptrs[i] = &docs[i]
	}
	rec := stringRecord(t, memory.DefaultAllocator, arrow.BinaryTypes.String, ptrs)
	defer rec.Release()
	files := map[string][]byte{
		"docs.txt":     []byte(strings.Join(docs, "\n\n") + "\n"),
		"docs.jsonl":   []byte(jsonl.String()),
		"docs.parquet": encodeArrow(t, "parquet", rec, 8),
		"docs.arrow":   encodeArrow(t, "arrows", rec, 8),
	}
	var local, remote []string
	for _, name := range []string{"docs.txt", "docs.jsonl", "docs.parquet", "docs.arrow"} {
		local = append(local, writeFile(t, dir, name, files[name]))
		s.Put(t, "text/"+name, files[name])
		remote = append(remote, s3test.Prefix("text/"+name))
	}
	for i := range local {
		ld, err := collectDocuments(local[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := collectDocuments(remote[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ld) == 0 || !reflect.DeepEqual(texts(ld), texts(rd)) {
			t.Errorf("%s: %d remote documents differ from the %d local ones", remote[i], len(rd), len(ld))
		}
	}
	opts := &TokensOptions{SeqLen: 15}
	lm, err := WriteTokensFile(context.Background(), filepath.Join(dir, "local.parquet"), local, tok, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := WriteTokensFile(context.Background(), filepath.Join(dir, "remote.parquet"), remote, tok, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lm.Inputs {
		li, ri := lm.Inputs[i], rm.Inputs[i]
		if ri.Path != remote[i] || ri.SHA256 != li.SHA256 || ri.Bytes != li.Bytes || ri.Tokens != li.Tokens || li.SHA256 == "" {
			t.Errorf("input %d: remote %+v, local %+v", i, ri, li)
		}
	}
	if !reflect.DeepEqual(readWindows(t, filepath.Join(dir, "local.parquet"), 15), readWindows(t, filepath.Join(dir, "remote.parquet"), 15)) {
		t.Error("the windows of the remote inputs differ from the local ones'")
	}
}

// TestRemoteWriters writes MNIST-layout, .npy and token datasets (Parquet
// and Arrow, with a validation file) to S3: each object is byte for byte
// the file written locally, and reads back through Open and
// ReadTokensMeta. A token dataset that fails (too short) or is aborted
// leaves no object.
func TestRemoteWriters(t *testing.T) {
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := tinyStories(t, 20)
	s := s3test.Start(t)
	dir := t.TempDir()
	in := writeText(t, dir, "docs.txt", docs)
	same := func(local, key string) {
		t.Helper()
		want, err := os.ReadFile(local)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Object(t, key); string(got) != string(want) {
			t.Errorf("s3 %s: %d bytes differ from the local file's %d", key, len(got), len(want))
		}
	}
	for _, format := range []string{"parquet", "arrow"} {
		opts := &TokensOptions{SeqLen: 15, ValEvery: 4, Format: format, ValOut: filepath.Join(dir, "val."+format)}
		if _, err := WriteTokensFile(context.Background(), filepath.Join(dir, "tok."+format), []string{in}, tok, info, opts); err != nil {
			t.Fatal(err)
		}
		ro := *opts
		ro.ValOut = s3test.Prefix("w/val." + format)
		rm, err := WriteTokensFile(context.Background(), s3test.Prefix("w/tok."+format), []string{in}, tok, info, &ro)
		if err != nil {
			t.Fatal(err)
		}
		same(filepath.Join(dir, "tok."+format), "w/tok."+format)
		same(filepath.Join(dir, "val."+format), "w/val."+format)
		meta, err := ReadTokensMeta(s3test.Prefix("w/tok." + format))
		if err != nil || !reflect.DeepEqual(meta, rm) {
			t.Errorf("ReadTokensMeta of the %s upload: %v, %+v; want %+v", format, err, meta, rm)
		}
		d, err := Open(s3test.Prefix("w/val."+format), nil)
		if err != nil || int64(d.Len()) != rm.Windows.Val {
			t.Fatalf("Open the val upload: %v; want %d rows", err, rm.Windows.Val)
		}
		d.Close()
	}
	if err := WriteNPYFile(filepath.Join(dir, "a.npy"), []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	if err := WriteNPYFile(s3test.Prefix("w/a.npy"), []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	same(filepath.Join(dir, "a.npy"), "w/a.npy")
	m := &MNIST{Rows: 3, Height: 2, Width: 2, Images: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Labels: []byte{3, 1, 4}}
	lsize, err := WriteMNISTFile(filepath.Join(dir, "m.parquet"), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	rsize, err := WriteMNISTFile(s3test.Prefix("w/m.parquet"), m, nil)
	if err != nil || rsize != lsize {
		t.Fatalf("WriteMNISTFile to S3: %v, %d bytes; local %d", err, rsize, lsize)
	}
	same(filepath.Join(dir, "m.parquet"), "w/m.parquet")

	// Nothing is left by a failed or an aborted write.
	_, err = WriteTokensFile(context.Background(), s3test.Prefix("fail/tok.parquet"), []string{in}, tok, info, &TokensOptions{SeqLen: 60000})
	if !errors.Is(err, ErrShortCorpus) {
		t.Fatalf("a corpus shorter than a window: %v", err)
	}
	bos, eos := 1, 2
	w, err := NewTokenWriter(s3test.Prefix("fail/ids.arrow"), tok.VocabSize(), &bos, &eos, info, &TokensOptions{SeqLen: 3, Format: "arrow"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]int32{1, 5, 6, 7, 8, 9, 10, 11, 12}); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if keys := s.Keys(t, "fail/"); len(keys) > 0 {
		t.Errorf("objects left by a failed and an aborted write: %v", keys)
	}
}

// TestRemoteMissing: a missing remote dataset or labels file is an error
// wrapping fs.ErrNotExist that names the location; a missing bucket one
// line naming the bucket.
func TestRemoteMissing(t *testing.T) {
	s := s3test.Start(t)
	s.Put(t, "m/x.npy", npyBytes(1, "<f4", false, []int{2}, encodeDense(Float32, binary.LittleEndian, seq(2))))
	for _, tc := range []struct {
		data, labels, want string
		notExist           bool
	}{
		{s3test.Prefix("m/none.parquet"), "", s3test.Prefix("m/none.parquet"), true},
		{s3test.Prefix("m/x.npy"), s3test.Prefix("m/none.npy"), s3test.Prefix("m/none.npy"), true},
		{"s3://no-such-bucket/x.csv", "", `bucket "no-such-bucket" does not exist`, false},
	} {
		_, err := Open(tc.data, &Options{Labels: tc.labels})
		if err == nil || errors.Is(err, fs.ErrNotExist) != tc.notExist || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(%s, labels %q) = %v; want one line naming %s (wrapping fs.ErrNotExist: %v)", tc.data, tc.labels, err, tc.want, tc.notExist)
		}
	}
	if _, err := FileSHA256(s3test.Prefix("m/none.npy")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FileSHA256 of a missing object: %v", err)
	}
}
