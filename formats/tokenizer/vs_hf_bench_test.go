package tokenizer

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/internal/sharedtest"
)

// BenchmarkEncodeVsHF encodes the documents of TinyStories (its blank-line
// blocks, 794 KB) with this package and with Hugging Face's tokenizers
// (npm `tokenizers` 0.23.2, its Rust implementation, through
// scripts/node-bench/hf_encode.mjs, one thread), best of three runs each,
// for the stories260K tokenizer.json and roberta-base, and reports both
// throughputs and their ratio. It needs `make setup-bench`; without the
// package it skips (benchmarks are not part of make test).
func BenchmarkEncodeVsHF(b *testing.B) {
	shared := sharedtest.Dir(b)
	modules, _ := filepath.Abs("../../.cache/node-bench/node_modules")
	if v := os.Getenv("DISTILL_BENCH_NODE_MODULES"); v != "" {
		modules = v
	}
	if _, err := os.Stat(filepath.Join(modules, "tokenizers")); err != nil {
		b.Skipf("npm tokenizers not installed (make setup-bench): %v", err)
	}
	textPath := filepath.Join(shared, "teachers", "seq", "tinystories_val.txt")
	text, err := os.ReadFile(textPath)
	if err != nil {
		b.Fatal(err)
	}
	docs := strings.Split(string(text), "\n\n")
	for _, name := range []string{"stories260K-hf", "roberta-base"} {
		path := filepath.Join(shared, "tokenizers", name, "tokenizer.json")
		if name == "stories260K-hf" {
			path = filepath.Join(shared, "teachers", "seq", "stories260K-hf", "tokenizer.json")
		}
		b.Run(name, func(b *testing.B) {
			tok, _, err := Load(path)
			if err != nil {
				b.Fatal(err)
			}
			var goRate, hfRate float64
			for b.Loop() {
				best := time.Duration(1 << 62)
				for range 4 { // one warm-up, three timed
					start := time.Now()
					for _, d := range docs {
						if _, err := tok.Encode(d, false); err != nil {
							b.Fatal(err)
						}
					}
					best = min(best, time.Since(start))
				}
				goRate = float64(len(text)) / best.Seconds() / 1e6
				cmd := exec.Command("node", "../../scripts/node-bench/hf_encode.mjs", path, textPath, "3")
				cmd.Env = append(os.Environ(), "RAYON_NUM_THREADS=1", "DISTILL_BENCH_NODE_MODULES="+modules)
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("hf_encode.mjs: %v", err)
				}
				var hf struct {
					MBps float64 `json:"mb_per_s"`
				}
				if err := json.Unmarshal(out, &hf); err != nil {
					b.Fatal(err)
				}
				hfRate = hf.MBps
			}
			b.ReportMetric(goRate, "go_MB/s")
			b.ReportMetric(hfRate, "hf_MB/s")
			b.ReportMetric(goRate/hfRate, "ratio")
		})
	}
}
