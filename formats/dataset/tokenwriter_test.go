package dataset

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestTokenWriter writes the encodings of TinyStories documents through
// TokenWriter (ids, no text) and the documents themselves through
// WriteTokensFile with the same options (EOS, stride, validation file):
// the windows of both files are refWindows', and the metadata equal but
// for the inputs, which TokenWriter leaves to its caller.
func TestTokenWriter(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := tinyStories(t, 40)
	dir := t.TempDir()
	opts := &TokensOptions{SeqLen: 31, Stride: 20, EOS: true, ValEvery: 3, ValOut: filepath.Join(dir, "text-val.parquet")}
	text, err := WriteTokensFile(context.Background(), filepath.Join(dir, "text.parquet"), []string{writeText(t, dir, "docs.txt", docs)}, tok, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	bos, eos := 1, 2
	o := *opts
	o.ValOut = filepath.Join(dir, "ids-val.parquet")
	out := filepath.Join(dir, "ids.parquet")
	w, err := NewTokenWriter(out, tok.VocabSize(), &bos, &eos, info, &o)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		ids, err := tok.Encode(d, true)
		if err != nil {
			t.Fatal(err)
		}
		ids32 := make([]int32, len(ids))
		for i, id := range ids {
			ids32[i] = int32(id)
		}
		if err := w.Add(ids32); err != nil {
			t.Fatal(err)
		}
	}
	w.Add(nil) // an empty document: counted, skipped
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists before Commit: %v", out, err)
	}
	meta, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	w.Abort() // after Commit: leaves the files
	all, _ := refWindows(t, tok, docs, eos, 32, 20)
	var train, val [][]int32
	for i, win := range all {
		if (i+1)%3 == 0 {
			val = append(val, win)
		} else {
			train = append(train, win)
		}
	}
	if got := readWindows(t, out, 31); !reflect.DeepEqual(got, train) {
		t.Errorf("train windows differ from the reference (%d, want %d)", len(got), len(train))
	}
	if got := readWindows(t, o.ValOut, 31); !reflect.DeepEqual(got, val) {
		t.Errorf("val windows differ from the reference (%d, want %d)", len(got), len(val))
	}
	if !reflect.DeepEqual(readWindows(t, filepath.Join(dir, "text.parquet"), 31), train) {
		t.Error("WriteTokensFile's windows differ from the reference")
	}
	if meta.EmptyDocuments != 1 {
		t.Errorf("%d empty documents, want 1", meta.EmptyDocuments)
	}
	meta.EmptyDocuments, text.Inputs = 0, nil
	if !reflect.DeepEqual(meta, text) {
		t.Errorf("metadata\n%+v\nwant (WriteTokensFile's)\n%+v", meta, text)
	}
	back, err := ReadTokensMeta(out)
	if err != nil || !reflect.DeepEqual(back.Windows, meta.Windows) || *back.BOSID != 1 {
		t.Errorf("read back %+v, %v", back, err)
	}

	// Errors: an id outside the vocabulary; too few tokens (nothing written).
	short := filepath.Join(dir, "short.parquet")
	w, err = NewTokenWriter(short, 512, nil, nil, info, &TokensOptions{SeqLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]int32{1, 512}); err == nil || !strings.Contains(err.Error(), "token id 512 outside the vocabulary of 512") {
		t.Errorf("id 512: %v", err)
	}
	w.Add([]int32{1, 5, 6})
	if _, err := w.Commit(); !errors.Is(err, ErrShortCorpus) {
		t.Errorf("3 tokens for windows of 9: %v", err)
	}
	w.Abort()
	assertNoFiles(t, dir, "short.parquet")
	if _, err := NewTokenWriter(short, 512, nil, nil, info, &TokensOptions{SeqLen: 8, EOS: true}); err == nil || !strings.Contains(err.Error(), "no eos") {
		t.Errorf("EOS without an eos id: %v", err)
	}
}
