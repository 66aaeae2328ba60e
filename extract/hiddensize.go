package extract

import (
	"fmt"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/human"
)

// bigRunBytes is the size of the hidden outputs of one teacher run above
// which extract says what they cost (hiddenNote). A layer of
// stories260K's attention maps at T = 256 is 2 MiB per window, so 32
// windows reach it; its hidden states ([256, 64], 64 KiB) stay far below.
const bigRunBytes = 64 << 20

// hiddenNote returns a note on the cost of caching the hidden tensors
// hidden for rows rows, when one teacher run of runBatch rows returns
// more than bigRunBytes of them (onnxruntime hands them over as float32),
// and "" otherwise: the values per row, the bytes per row as stored
// (float16 halves float32's), the cache size before compression, the
// run's share of memory and the --batch that keeps it under bigRunBytes.
// Measured for one layer of stories260K's maps on 218 windows of 256
// tokens: Parquet/zstd parts of 0.96 MiB per window as float32 and 0.28
// as float16 (the masked half is zeros); extract's peak memory 4.4 GB at
// --batch 256, 1.6 GB at --batch 16.
func hiddenNote(hidden []formats.TensorSpec, rows int64, runBatch int) string {
	var values int64
	stored := int64(0)
	var names []string
	for _, h := range hidden {
		n := int64(h.Size())
		values += n
		per := int64(4)
		if h.Dtype == formats.Float16 {
			per = 2
		}
		stored += n * per
		names = append(names, fmt.Sprintf("%s %v", h.Name, h.Shape))
	}
	run := values * 4 * int64(runBatch)
	if run <= bigRunBytes {
		return ""
	}
	s := fmt.Sprintf("the cached tensors (%s) are %s values per row: %s per row as stored, %s for the %s rows before compression",
		strings.Join(names, ", "), human.Digits(values), human.Bytes(stored), human.Bytes(stored*rows), human.Digits(rows))
	if stored == values*4 {
		s += " (--dtype f16 halves it)"
	}
	return s + fmt.Sprintf("; a teacher run of %d rows returns %s of them, each stream holding one: --batch %d keeps a run under %s",
		runBatch, human.Bytes(run), max(1, bigRunBytes/(values*4)), human.Bytes(bigRunBytes))
}
