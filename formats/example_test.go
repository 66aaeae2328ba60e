package formats_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/distill-ml/distill/formats"
)

func ExampleNewWriter() {
	// Three classes, top-2 scores stored as float16, with labels.
	cfg := formats.Config{Classes: 3, TopK: 2, ScoreDtype: formats.Float16, HasLabel: true}

	var part bytes.Buffer
	w, err := formats.NewWriter(&part, cfg, &formats.WriterOptions{Format: formats.FormatParquet})
	if err != nil {
		log.Fatal(err)
	}
	// Full logits in: the writer derives topk_index, topk_logit and logsumexp.
	err = w.Write(&formats.Batch{
		Rows:   []int64{10, 11},
		Labels: []int64{2, 0},
		Logits: []float32{0.5, -1, 3, 2, 0, -2},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := formats.NewReader(bytes.NewReader(part.Bytes()), int64(part.Len()), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	fmt.Println(r.Format(), r.Schema().Field(2).Name, r.Schema().Field(2).Type)
	var b formats.Batch
	if err := r.ReadBatch(0, &b); err != nil {
		log.Fatal(err)
	}
	for i := range b.Len() {
		fmt.Printf("row %d label %d top-2 %v %v logsumexp %.3f\n",
			b.Rows[i], b.Labels[i], b.TopKIndex[2*i:2*i+2], b.TopKLogit[2*i:2*i+2], b.LogSumExp[i])
	}
	// Output:
	// parquet topk_index fixed_size_list<element: int32>[2]
	// row 10 label 2 top-2 [2 0] [3 0.5] logsumexp 3.096
	// row 11 label 0 top-2 [0 1] [2 0] logsumexp 2.143
}
