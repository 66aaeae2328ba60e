package train_test

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/train"
)

func ExampleTrain() {
	tmp, err := os.MkdirTemp("", "distill-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// A tiny cache: 2 inputs, 2 classes, teacher logits (x0 − x1, x1 − x0)
	// and the label of the larger input.
	cfg := formats.Config{Classes: 2, HasLabel: true, Inputs: []formats.TensorSpec{{Name: "x", Shape: []int64{2}}}}
	cw, err := formats.CreateCache(filepath.Join(tmp, "cache"), formats.Manifest{}, cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	b := &formats.Batch{Inputs: map[string][]float32{}}
	for i := range 512 {
		x0, x1 := float32(rng.NormFloat64()), float32(rng.NormFloat64())
		b.Rows = append(b.Rows, int64(i))
		b.Inputs["x"] = append(b.Inputs["x"], x0, x1)
		b.Logits = append(b.Logits, x0-x1, x1-x0)
		label := int64(0)
		if x1 > x0 {
			label = 1
		}
		b.Labels = append(b.Labels, label)
	}
	if _, err := cw.WritePart(b); err != nil {
		log.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		log.Fatal(err)
	}

	cache, err := formats.Open(filepath.Join(tmp, "cache"))
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	res, err := train.Train(context.Background(), train.Config{Hidden: []int{8}}, cache, &train.Options{
		Epochs: 5, BatchSize: 32, LR: 1e-2, Temperature: 2, Alpha: 0.9, Seed: 1,
		Val: cache, Out: filepath.Join(tmp, "student.ckpt"),
	})
	if err != nil {
		log.Fatal(err)
	}
	last := res.Info.Metrics[len(res.Info.Metrics)-1]
	fmt.Printf("epochs %d, steps %d, val accuracy above 95%%: %v\n", res.Info.Epoch, res.Info.Step, *last.Val.Accuracy > 0.95)

	ck, err := train.Load(filepath.Join(tmp, "student.ckpt"))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range ck.Student.Tensors() {
		fmt.Println(p.Name, p.Shape)
	}
	// Output:
	// epochs 5, steps 80, val accuracy above 95%: true
	// input_mean [2]
	// input_std [2]
	// fc1.weight [8 2]
	// fc1.bias [8]
	// fc2.weight [2 8]
	// fc2.bias [2]
}
