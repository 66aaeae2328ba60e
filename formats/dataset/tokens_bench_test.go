package dataset

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/distill-ml/distill/internal/sharedtest"
)

// BenchmarkTokens writes tinystories_val.txt (794 KB, about 386,000
// tokens) as 256-token windows with tok512.bin: "encode" is the
// tokenizer alone on one goroutine over the same documents, the bound
// for one worker; the others are WriteTokensFile with 1 worker and with
// one per core. MB/s counts input text.
func BenchmarkTokens(b *testing.B) {
	tok, info := loadTokenizer(b, "tok512.bin")
	in := filepath.Join(sharedtest.Dir(b, "teachers", "seq"), "tinystories_val.txt")
	st, err := os.Stat(in)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		data, err := os.ReadFile(in)
		if err != nil {
			b.Fatal(err)
		}
		docs := blankBlocks(string(data))
		b.ReportAllocs()
		b.SetBytes(st.Size())
		var tokens int
		for b.Loop() {
			tokens = 0
			for _, d := range docs {
				ids, _ := tok.Encode(d, true)
				tokens += len(ids)
			}
		}
		b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	for _, tc := range []struct {
		format  string
		workers int
	}{{"parquet", 1}, {"parquet", runtime.GOMAXPROCS(0)}, {"arrow", runtime.GOMAXPROCS(0)}} {
		b.Run(fmt.Sprintf("%s/workers=%d", tc.format, tc.workers), func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "tokens."+tc.format)
			b.ReportAllocs()
			b.SetBytes(st.Size())
			var tokens int64
			for b.Loop() {
				meta, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info,
					&TokensOptions{SeqLen: 256, Format: tc.format, Workers: tc.workers})
				if err != nil {
					b.Fatal(err)
				}
				tokens = meta.Tokens
			}
			b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
