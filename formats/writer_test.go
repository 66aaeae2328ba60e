package formats

import (
	"fmt"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	type fc struct {
		f Format
		c Compression
	}
	fcs := []fc{{FormatArrow, CompressionNone}, {FormatArrow, CompressionLZ4}, {FormatArrow, CompressionZstd},
		{FormatParquet, CompressionNone}, {FormatParquet, CompressionLZ4}, {FormatParquet, CompressionZstd}}
	for name, cfg := range testConfigs {
		for _, x := range fcs {
			t.Run(fmt.Sprintf("%s/%s-%s", name, x.f, x.c), func(t *testing.T) {
				t.Parallel()
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				// 3 writes of uneven sizes regrouped into batches of 4 rows.
				in := []*Batch{makeBatch(cfg, 0, 5, 1), makeBatch(cfg, 5, 0, 2), makeBatch(cfg, 5, 6, 3)}
				data := writePart(t, cfg, &WriterOptions{Format: x.f, Compression: x.c, RowsPerBatch: 4, Allocator: mem}, in...)
				got, sizes := readPart(t, data, &ReaderOptions{Allocator: mem})
				equalBatch(t, concatBatches(in...), got)
				if want := []int{4, 4, 3}; !slices.Equal(sizes, want) {
					t.Errorf("batch sizes %v, want %v", sizes, want)
				}
			})
		}
	}
}
