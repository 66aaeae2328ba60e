package dataset_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
)

// Tokenize two documents with a character vocabulary (ids: "\n" 0,
// " " 1, "a" 2, "b" 3, "c" 4) into windows of SeqLen+1 = 4 ids every 2,
// and read them back as extract does.
func ExampleWriteTokensFile() {
	dir, err := os.MkdirTemp("", "tokens-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "tokens.parquet")
	if err := os.WriteFile(in, []byte("abc abc\n\ncab\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.ParseChars([]byte(`["\n", " ", "a", "b", "c"]`))
	if err != nil {
		log.Fatal(err)
	}
	info := tokenizer.Info{Path: "vocab.json", Kind: "chars"}
	meta, err := dataset.WriteTokensFile(context.Background(), out, []string{in}, tok, info,
		&dataset.TokensOptions{SeqLen: 3, Stride: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(meta.Documents, "documents,", meta.Tokens, "tokens,", meta.Rows(), "windows,", meta.DroppedTokens, "dropped")

	d, err := dataset.Open(out, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	fmt.Println(d.Columns())
	for b, err := range dataset.All(d, 0, 2) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(b.Rows, b.Cols["input_ids"])
	}
	// Output:
	// 2 documents, 10 tokens, 4 windows, 0 dropped
	// [{input_ids int32 [4]}]
	// [0 1] [2 3 4 1 4 1 2 3]
	// [2 3] [2 3 4 4 4 4 2 3]
}
