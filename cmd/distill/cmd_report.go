package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/report"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "report",
		UsageLine: "RUN_DIR [--out DIR]",
		Short:     "write an HTML report of a run: training curves, calibration, confusion, size and speed, samples",
		Long: `Write a self-contained HTML report of a run directory to RUN_DIR/report/
(or --out): index.html and the PNG charts next to it, linked relatively, with
no external resources, so the folder can be copied or served anywhere.

RUN_DIR holds any number of student checkpoints (directories named *.ckpt,
from distill train, at any depth) and eval outputs (RUN_DIR/eval/*.json, from
distill eval --out); for language models also transformer checkpoints
(directories holding training.json, from distill train --student
transformer, whatever their name) and generated samples (*.jsonl files
whose objects have prompt, text, ids and seed, as distill generate --out
writes; other JSONL files are passed over). The report shows:

  - the size and speed table of the eval outputs: model, accuracy, errors,
    agreement and KL with the teacher, ECE, parameters, file size, latency
    p50 per sample at batch 1 and at the large batch, throughput;
  - training curves per epoch (train loss, validation accuracy, validation
    agreement with the teacher) of every checkpoint, distilled (KD, alpha >
    0 in its config.json) solid and hard-label baselines (alpha 0) dashed;
  - a reliability diagram and a confusion matrix (heat map, coloured by the
    fraction of each label's rows, with counts) per eval output;
  - per-class accuracy bars of every eval output with labels;
  - for language models: their size and speed table (perplexity, NLL,
    next-token accuracy, agreement and KL per token, ECE, parameters, file
    size, prefill tokens/s and decode tokens/s at each batch measured),
    the transformer checkpoints' table and curves per epoch (train loss,
    held-out perplexity and agreement from training.json), and the first
    sample of each prompt (up to 4 prompts) of every samples file side by
    side, one column per file.

Each model is labelled by its name (eval --name; a checkpoint's directory
name without .ckpt). distill eval --out RUN_DIR/eval/NAME.json --report
evaluates and rewrites the report in one go.

Exit codes: 0 success, 1 failure, 2 usage error.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var out string
			var table bool
			fs.StringVar(&out, "out", "", "report directory (default RUN_DIR/report)")
			fs.BoolVar(&table, "table", false, "also print the size and speed table(s) of the eval outputs as text (classifiers, language models)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageError("want one run directory, got %d arguments", len(args))
				}
				index, err := writeReport(args[0], out)
				if err != nil {
					return err
				}
				if table {
					if err := report.WriteTable(cmdOut, args[0]); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmdOut, "report: %s\n", index)
				return nil
			}
		},
	})
}

// writeReport writes the report of runDir into out (default
// runDir/report), prints its warnings and returns the path of index.html.
func writeReport(runDir, out string) (string, error) {
	dir := out
	if dir == "" {
		dir = filepath.Join(runDir, "report")
	}
	// The files the report reads must stay outside what it writes.
	run, err := report.LoadRun(runDir, dir)
	if err != nil {
		return "", err
	}
	evals, _ := filepath.Glob(filepath.Join(runDir, "eval", "*.json"))
	var inputs []guard.Path
	for _, c := range run.Ckpts {
		inputs = append(inputs, guard.Path{Flag: "RUN_DIR checkpoint", Path: filepath.Join(runDir, c.Path)})
	}
	for _, c := range run.LMCkpts {
		inputs = append(inputs, guard.Path{Flag: "RUN_DIR checkpoint", Path: filepath.Join(runDir, c.Path)})
	}
	for _, f := range run.Samples {
		inputs = append(inputs, guard.Path{Flag: "RUN_DIR samples", Path: filepath.Join(runDir, f.Path)})
	}
	for _, e := range evals {
		inputs = append(inputs, guard.Path{Flag: "RUN_DIR eval output", Path: e})
	}
	if err := checkPaths(inputs, []guard.Path{{Flag: "--out", Path: dir, Kind: guard.Dir}}); err != nil {
		return "", err
	}
	index, warnings, err := report.Write(runDir, &report.Options{Out: out, ToolVersion: version})
	for _, w := range warnings {
		fmt.Fprintf(cmdErr, "report: warning: %s\n", w)
	}
	return index, err
}
