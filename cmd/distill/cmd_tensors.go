package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/distill-ml/distill/extract"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "tensors",
		UsageLine: "[--ort-lib PATH] TEACHER.onnx",
		Short:     "list a teacher's tensors that extract can cache",
		Long: `List every tensor of an ONNX model: inputs, intermediate tensors and
outputs, with the operator that produces each and its shape from one probe
run on an all-zero batch. Any listed numeric tensor can be cached with
'distill extract --hidden NAME'. The likely penultimate layer (the input of
the last MatMul/Gemm before the scores) and the tensor extract caches as
scores (e.g. the logits before a final Softmax) are marked.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			lib := fs.String("ort-lib", "", "onnxruntime shared library (default: $"+extract.EnvLibraryPath+", then the project cache from make setup)")
			output := fs.String("output", "", "the output holding the class scores (default: chosen automatically)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageError("want exactly one model file, got %d arguments", len(args))
				}
				m, err := extract.LoadModel(args[0])
				if err != nil {
					return err
				}
				src, srcErr := m.ChooseScores(*output)
				if srcErr != nil && *output != "" {
					return usageError("%v", srcErr)
				}
				rt, err := extract.NewRuntime(*lib)
				if err != nil {
					return err
				}
				defer rt.Close()
				all, err := rt.Probe(m, extract.SessionOptions{Threads: 1})
				if err != nil {
					return err
				}
				marks := map[string]string{}
				if srcErr == nil {
					marks[src.Tensor] = "scores (" + string(orDefault(src.Kind, "auto")) + ")"
					if pen := m.Penultimate(src.Tensor); pen != "" {
						marks[pen] = "penultimate"
					}
				}
				fmt.Fprintf(cmdOut, "%s: %s, opset %d, sha256 %s\n\n", args[0], m.Producer, m.Opset, m.SHA256[:16])
				w := tabwriter.NewWriter(cmdOut, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "ROLE\tNAME\tOP\tTYPE\tSHAPE\tNOTE")
				nIn, nOut := len(m.Inputs()), len(m.Outputs())
				for i, t := range all {
					role := "hidden"
					switch {
					case i < nIn:
						role = "input"
					case i >= len(all)-nOut:
						role = "output"
					}
					typ := t.Kind
					if t.Kind == "tensor" {
						typ = t.Elem.String()
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", role, t.Name, t.Op, typ, t.ShapeString(), marks[t.Name])
				}
				return w.Flush()
			}
		},
	})
}

func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}
