package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/store"
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

RUN_DIR and --out may be s3:// or gs:// locations: a remote run is read
through a download of the files the report reads (no weights), a remote
report is uploaded with index.html last.

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
					run, cleanup, err := fetchRun(ctx, args[0], "")
					if err != nil {
						return err
					}
					defer cleanup()
					if err := report.WriteTable(cmdOut, run); err != nil {
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
// runDir/report), prints its warnings and returns the location of
// index.html. Either may be remote (s3://, gs://): a remote run is read
// through a local copy of the files the report reads (fetchRun), a
// remote report is rendered into a temporary directory and uploaded with
// index.html last (store.UploadDir), so a reader that finds index.html
// finds its charts.
func writeReport(runDir, out string) (string, error) {
	ctx := context.Background()
	dir := out
	if dir == "" {
		dir = store.Join(runDir, "report")
	}
	localRun, cleanup, err := fetchRun(ctx, runDir, dir)
	if err != nil {
		return "", err
	}
	defer cleanup()
	localOut := dir
	if store.IsRemote(dir) {
		tmp, err := os.MkdirTemp("", "distill-report-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		localOut = filepath.Join(tmp, "report")
	}
	// The files the report reads must stay outside what it writes.
	run, err := report.LoadRun(localRun, localOut)
	if err != nil {
		return "", err
	}
	evals, _ := filepath.Glob(filepath.Join(localRun, "eval", "*.json"))
	var inputs []guard.Path
	input := func(flag, rel string) {
		inputs = append(inputs, guard.Path{Flag: flag, Path: store.Join(runDir, strings.Split(filepath.ToSlash(rel), "/")...)})
	}
	for _, c := range run.Ckpts {
		input("RUN_DIR checkpoint", c.Path)
	}
	for _, c := range run.LMCkpts {
		input("RUN_DIR checkpoint", c.Path)
	}
	for _, f := range run.Samples {
		input("RUN_DIR samples", f.Path)
	}
	for _, e := range evals {
		rel, _ := filepath.Rel(localRun, e)
		input("RUN_DIR eval output", rel)
	}
	if err := checkPaths(inputs, []guard.Path{{Flag: "--out", Path: dir, Kind: guard.Dir}}); err != nil {
		return "", err
	}
	ro := &report.Options{Out: out, ToolVersion: version}
	if localRun != runDir || localOut != dir {
		ro.Out = localOut
	}
	if store.IsRemote(runDir) {
		ro.Location = runDir
	}
	index, warnings, err := report.Write(localRun, ro)
	for _, w := range warnings {
		fmt.Fprintf(cmdErr, "report: warning: %s\n", w)
	}
	if err != nil || !store.IsRemote(dir) {
		return index, err
	}
	if err := store.UploadDir(ctx, localOut, dir, "index.html"); err != nil {
		return "", err
	}
	return store.Join(dir, "index.html"), nil
}
