package dataset

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// collectDocuments returns the documents of path, or the first error.
func collectDocuments(path string, o *TextOptions) ([]Document, error) {
	var docs []Document
	for d, err := range Documents(path, o) {
		if err != nil {
			return docs, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// texts returns the Text of each document.
func texts(docs []Document) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.Text
	}
	return out
}

func TestDocumentsPlainText(t *testing.T) {
	t.Parallel()
	// A byte order mark, CRLF line ends, a line of white space, trailing
	// blank lines and a last line without a newline.
	const text = "\ufeffOnce upon\r\na time.\r\n \t\r\nThe end.\n\n\nMore  \nlast"
	for _, tc := range []struct {
		split string
		want  []string
		lines []int
	}{
		{"", []string{"Once upon\na time.", "The end.", "More  \nlast"}, []int{1, 4, 7}},
		{SplitBlank, []string{"Once upon\na time.", "The end.", "More  \nlast"}, []int{1, 4, 7}},
		{SplitLine, []string{"Once upon", "a time.", "The end.", "More  ", "last"}, []int{1, 2, 4, 7, 8}},
		{SplitNone, []string{strings.TrimPrefix(text, "\ufeff")}, []int{1}},
	} {
		t.Run("split="+tc.split, func(t *testing.T) {
			t.Parallel()
			for _, ext := range []string{".txt", ".text", ".MD"} {
				path := writeFile(t, t.TempDir(), "doc"+ext, []byte(text))
				docs, err := collectDocuments(path, &TextOptions{Split: tc.split})
				if err != nil {
					t.Fatal(err)
				}
				if got := texts(docs); !slices.Equal(got, tc.want) {
					t.Fatalf("documents %q, want %q", got, tc.want)
				}
				for i, d := range docs {
					if d.Line != tc.lines[i] || d.Number != i+1 || d.Row != -1 || d.Path != path {
						t.Errorf("document %d at %+v, want line %d", i, d, tc.lines[i])
					}
				}
			}
		})
	}
	// Only blank lines: no documents.
	path := writeFile(t, t.TempDir(), "blank.txt", []byte("\n \n\t\n"))
	if docs, err := collectDocuments(path, nil); err != nil || len(docs) != 0 {
		t.Errorf("blank file: %d documents, %v", len(docs), err)
	}
}

func TestDocumentsLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "long.txt", []byte("short\n\n"+strings.Repeat("x", 60)+"\n"+strings.Repeat("y", 60)+"\n"))
	for _, tc := range []struct {
		split string
		max   int64
		line  int
	}{
		{SplitBlank, 100, 3}, // the document of two 60-byte lines
		{SplitLine, 50, 3},   // a 60-byte line
		{SplitNone, 100, 1},  // the whole file
	} {
		_, err := collectDocuments(path, &TextOptions{Split: tc.split, MaxDocumentBytes: tc.max})
		var de *DocumentError
		if !errors.Is(err, ErrLimit) || !errors.As(err, &de) || de.Line != tc.line || de.Path != path {
			t.Errorf("split %s, max %d: %v, want ErrLimit at line %d", tc.split, tc.max, err, tc.line)
		}
	}
	// At the limit is fine.
	if _, err := collectDocuments(path, &TextOptions{Split: SplitLine, MaxDocumentBytes: 60}); err != nil {
		t.Errorf("lines of exactly the limit: %v", err)
	}
}

func TestDocumentsJSONL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := `{"text": "Hello \"world\"\n", "id": 1}

{"id": 2, "text": ""}
  {"text":"caf\u00e9","meta":{"text":"nested"}}
`
	for _, ext := range []string{".jsonl", ".json"} {
		path := writeFile(t, dir, "good"+ext, []byte(good))
		docs, err := collectDocuments(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := texts(docs), []string{"Hello \"world\"\n", "", "café"}; !slices.Equal(got, want) {
			t.Fatalf("documents %q, want %q", got, want)
		}
		if docs[2].Line != 4 || docs[2].Number != 3 {
			t.Errorf("third document at %+v, want line 4", docs[2])
		}
	}
	path := writeFile(t, dir, "field.jsonl", []byte(`{"content": "x"}`+"\n"))
	if docs, err := collectDocuments(path, &TextOptions{TextField: "content"}); err != nil || len(docs) != 1 || docs[0].Text != "x" {
		t.Errorf("TextField content: %v, %v", docs, err)
	}
	for _, tc := range []struct {
		name, data string
		line       int
		is         error
		msg        string
	}{
		{"missing", `{"text": "a"}` + "\n" + `{"body": "b"}`, 2, ErrColumn, `no field "text" (fields: "body")`},
		{"number", `{"text": 3}`, 1, ErrColumn, "is a number"},
		{"null", `{"text": null}`, 1, ErrColumn, "is null"},
		{"array value", `{"text": ["a"]}`, 1, ErrColumn, "is an array"},
		{"not an object", "\n\n[1, 2]", 3, ErrCorrupt, "one JSON object per line"},
		{"null line", `null`, 1, ErrCorrupt, "one JSON object per line"},
		{"bad json", `{"text": "a"`, 1, ErrCorrupt, "one JSON object per line"},
		{"pretty-printed", "{\n  \"text\": \"a\"\n}", 1, ErrCorrupt, "one JSON object per line"},
	} {
		path := writeFile(t, dir, tc.name+".jsonl", []byte(tc.data))
		_, err := collectDocuments(path, nil)
		var de *DocumentError
		if !errors.Is(err, tc.is) || !errors.As(err, &de) || de.Line != tc.line || !strings.Contains(err.Error(), tc.msg) ||
			!strings.Contains(err.Error(), path+":") {
			t.Errorf("%s: %v, want %v at %s:%d with %q", tc.name, err, tc.is, path, tc.line, tc.msg)
		}
	}
}

// stringRecord builds a record with a string column "text" of type typ
// (nil: a null) and an int64 column "id".
func stringRecord(t testing.TB, mem memory.Allocator, typ arrow.DataType, docs []*string) arrow.RecordBatch {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "text", Type: typ, Nullable: true}}, nil)
	var rows []string
	for i, d := range docs {
		v := "null"
		if d != nil {
			b, _ := json.Marshal(*d)
			v = string(b)
		}
		rows = append(rows, `{"id": `+strconv.Itoa(i)+`, "text": `+v+`}`)
	}
	return recordFromJSON(t, mem, sc, "["+strings.Join(rows, ",")+"]")
}

func TestDocumentsColumnar(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	want := []string{"first", "", "third \"doc\"\nwith lines", "ünïcode"}
	ptrs := make([]*string, len(want))
	for i := range want {
		ptrs[i] = &want[i]
	}
	for _, typ := range []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString} {
		rec := stringRecord(t, mem, typ, ptrs)
		for _, tc := range []struct{ format, name string }{
			{"parquet", "d.parquet"}, {"arrow", "d.arrow"}, {"arrows", "hf-stream.arrow"}, {"arrows", "d.arrows"},
		} {
			path := writeFile(t, dir, typ.String()+"-"+tc.name, encodeArrow(t, tc.format, rec, 3))
			docs, err := collectDocuments(path, &TextOptions{Allocator: mem})
			if err != nil {
				t.Fatalf("%s %s: %v", typ, tc.name, err)
			}
			if got := texts(docs); !slices.Equal(got, want) {
				t.Errorf("%s %s: %q, want %q", typ, tc.name, got, want)
			}
			if docs[3].Row != 3 || docs[3].Number != 4 || docs[3].Line != 0 {
				t.Errorf("%s %s: last document at %+v", typ, tc.name, docs[3])
			}
		}
		rec.Release()
	}
	// A null value, a missing column, a non-string column.
	rec := stringRecord(t, mem, arrow.BinaryTypes.String, []*string{ptrs[0], nil})
	defer rec.Release()
	for _, format := range []string{"parquet", "arrow"} {
		path := writeFile(t, dir, "null."+format, encodeArrow(t, format, rec, 0))
		_, err := collectDocuments(path, &TextOptions{Allocator: mem})
		var de *DocumentError
		if !errors.Is(err, ErrShape) || !errors.As(err, &de) || de.Row != 1 || !strings.Contains(err.Error(), path+" row 1") {
			t.Errorf("%s null: %v", format, err)
		}
		if _, err := collectDocuments(path, &TextOptions{TextField: "body", Allocator: mem}); !errors.Is(err, ErrColumn) || !strings.Contains(err.Error(), `string columns: "text"`) {
			t.Errorf("%s missing column: %v", format, err)
		}
		if _, err := collectDocuments(path, &TextOptions{TextField: "id", Allocator: mem}); !errors.Is(err, ErrColumn) || !strings.Contains(err.Error(), "want a string column") {
			t.Errorf("%s int column: %v", format, err)
		}
	}
	// Not Arrow at all.
	path := writeFile(t, dir, "junk.arrow", []byte("not an arrow file"))
	if _, err := collectDocuments(path, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk arrow: %v", err)
	}
	path = writeFile(t, dir, "junk.parquet", []byte("PAR1 not really"))
	if _, err := collectDocuments(path, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk parquet: %v", err)
	}
}

func TestTextFormat(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"a.txt": "text", "a.TEXT": "text", "README.md": "text", "a.jsonl": "jsonl", "a.json": "jsonl",
		"a.parquet": "parquet", "a.pq": "parquet", "a.arrow": "arrow", "a.ipc": "arrow", "a.feather": "arrow", "a.arrows": "arrow",
	} {
		if got, err := TextFormat(name); got != want || err != nil {
			t.Errorf("TextFormat(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"a.csv", "a", "a.txt.gz", "a.npy"} {
		if _, err := TextFormat(name); !errors.Is(err, ErrFormat) {
			t.Errorf("TextFormat(%q): %v, want ErrFormat", name, err)
		}
	}
	if _, err := collectDocuments(filepath.Join(t.TempDir(), "missing.txt"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := collectDocuments("x.txt", &TextOptions{Split: "paragraph"}); err == nil || !strings.Contains(err.Error(), "paragraph") {
		t.Errorf("bad split: %v", err)
	}
}

// TestDocumentsJoinBlocks joins consecutive blank-line blocks with a
// newline, as seq_targets.py joins paragraphs per BOS; a short last group
// is a document too.
func TestDocumentsJoinBlocks(t *testing.T) {
	const text = "A1\nA2\n\nB\n\n\nC\n \nD\n\nE"
	for _, tc := range []struct {
		join int
		want []string
	}{
		{0, []string{"A1\nA2", "B", "C", "D", "E"}},
		{1, []string{"A1\nA2", "B", "C", "D", "E"}},
		{2, []string{"A1\nA2\nB", "C\nD", "E"}},
		{3, []string{"A1\nA2\nB\nC", "D\nE"}},
		{9, []string{"A1\nA2\nB\nC\nD\nE"}},
	} {
		path := writeFile(t, t.TempDir(), "doc.txt", []byte(text))
		docs, err := collectDocuments(path, &TextOptions{JoinBlocks: tc.join})
		if err != nil {
			t.Fatal(err)
		}
		if got := texts(docs); !slices.Equal(got, tc.want) {
			t.Errorf("join %d: documents %q, want %q", tc.join, got, tc.want)
		}
	}
	if _, err := collectDocuments(writeFile(t, t.TempDir(), "d.txt", []byte(text)), &TextOptions{JoinBlocks: -1}); err == nil {
		t.Error("join -1 accepted")
	}
}
