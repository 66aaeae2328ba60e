package export_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/train"
)

func ExampleWrite() {
	// A student as train.Train or train.Load returns it: here an untrained
	// one-hidden-layer MLP over 28×28 images.
	s, err := train.NewStudent(train.Config{Inputs: 784, InputShape: []int{1, 28, 28}, Hidden: []int{32}, Classes: 10, LayerNorm: true}, 1)
	if err != nil {
		log.Fatal(err)
	}
	c := &train.Checkpoint{Student: s, Info: train.CheckpointInfo{Input: "image"}}

	var buf bytes.Buffer
	if err := export.Write(&buf, c, &export.Options{Probs: true, ToolVersion: "example"}); err != nil {
		log.Fatal(err)
	}
	var dump strings.Builder
	if err := export.Dump(&dump, buf.Bytes()); err != nil {
		log.Fatal(err)
	}
	for _, line := range strings.Split(dump.String(), "\n") {
		if strings.HasPrefix(line, "input") || strings.HasPrefix(line, "output") || strings.HasPrefix(line, "node") {
			fmt.Println(line)
		}
	}
	// Output:
	// input   image float[N,1,28,28]
	// output  logits float[N,10]
	// output  probs float[N,10]
	// node    input/Flatten = Flatten(image) axis=1
	// node    standardize/Sub = Sub(input/Flatten, input_mean)
	// node    standardize/Div = Div(standardize/Sub, input_std)
	// node    fc1/Gemm = Gemm(standardize/Div, fc1.weight, fc1.bias) transB=1
	// node    ln1/LayerNormalization = LayerNormalization(fc1/Gemm, ln1.weight, ln1.bias) axis=-1 epsilon=1e-05
	// node    ln1/Relu = Relu(ln1/LayerNormalization)
	// node    logits = Gemm(ln1/Relu, fc2.weight, fc2.bias) transB=1
	// node    probs = Softmax(logits) axis=1
}
