package dataset

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fuzzTextOptions keeps fuzzed documents small.
var fuzzTextOptions = TextOptions{MaxDocumentBytes: 1 << 10, MaxInMemoryBytes: 1 << 20}

// checkFuzzDocuments reads the documents of path: an error must wrap one
// of the package's sentinels, plain text documents are never empty and
// no document exceeds the limit.
func checkFuzzDocuments(t *testing.T, path string, o *TextOptions) {
	for d, err := range Documents(path, o) {
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		if int64(len(d.Text)) > o.MaxDocumentBytes {
			t.Fatalf("document of %d bytes, limit %d", len(d.Text), o.MaxDocumentBytes)
		}
		if format, _ := TextFormat(path); format == "text" && d.Text == "" {
			t.Fatalf("empty plain text document at %s", d.Where())
		}
	}
}

// FuzzDocuments feeds plain text (split at blank lines, at lines, or not)
// and JSON Lines to Documents.
func FuzzDocuments(f *testing.F) {
	f.Add([]byte("\ufeffOnce upon\r\na time.\n \n\nThe end."), uint8(0))
	f.Add([]byte("a\nb\n\n\nc"), uint8(1))
	f.Add([]byte(strings.Repeat("x", 1030)), uint8(2))
	f.Add([]byte(`{"text": "Hello \"world\"\n", "id": 1}`+"\n\n"+`{"text": ""}`+"\n"+`{"text": 3}`), uint8(3))
	f.Add([]byte(`{"text":"caf\u00e9"}`+"\n"+`[1]`), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		o := fuzzTextOptions
		name := "fuzz.txt"
		switch mode % 4 {
		case 0:
			o.Split = SplitBlank
		case 1:
			o.Split = SplitLine
		case 2:
			o.Split = SplitNone
		case 3:
			name = "fuzz.jsonl"
		}
		path := writeFile(t, t.TempDir(), name, data)
		checkFuzzDocuments(t, path, &o)
	})
}

// FuzzTextColumns feeds Parquet and Arrow IPC bytes to the string-column
// readers of Documents.
func FuzzTextColumns(f *testing.F) {
	docs := []string{"first", "", "third \"doc\"\nwith lines", "ünïcode"}
	ptrs := make([]*string, len(docs))
	for i := range docs {
		ptrs[i] = &docs[i]
	}
	for _, typ := range []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString} {
		rec := stringRecord(f, memory.DefaultAllocator, typ, ptrs)
		for i, format := range []string{"parquet", "arrow", "arrows"} {
			f.Add(encodeArrow(f, format, rec, 2), uint8(i))
		}
		rec.Release()
	}
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		o := fuzzTextOptions
		name := "fuzz.arrow"
		if kind%2 == 0 {
			name = "fuzz.parquet"
		}
		path := writeFile(t, t.TempDir(), name, data)
		checkFuzzDocuments(t, filepath.Clean(path), &o)
	})
}
