package formats_test

// Interop: readers nobody in this project wrote read our caches. Each case
// writes a cache with formats.CreateCache, reads it back with Go, then runs
// a Node.js script on the directory and compares what it saw:
//
//	Parquet    scripts/node/duckdb_sum.mjs  DuckDB (@duckdb/node-api)
//	Arrow IPC  scripts/node/arrow_read.mjs  apache-arrow tableFromIPC
//
// apache-arrow (JS) decodes compressed IPC bodies only through codecs the
// caller registers; it ships none. arrow_read.mjs registers fzstd (zstd)
// and lz4js (LZ4 frame), pure-JS npm packages from scripts/node/package.json,
// so lz4 and zstd IPC caches are read by third-party decoders too.
//
// The npm packages live in .cache/node/node_modules (make setup-node), found
// through $DISTILL_NODE_MODULES (set by make) or by walking up from the test's
// directory. Without node or the packages the test skips, except with
// CI=true, where it fails: make test provisions both.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/formats"
)

// interopPackages are the npm packages the scripts load.
var interopPackages = []string{"@duckdb/node-api", "apache-arrow", "fzstd", "lz4js"}

// interopEnv returns the node binary, the node_modules directory and the
// directory of the scripts, or skips (fails with CI=true) saying what is
// missing.
func interopEnv(t *testing.T) (node, modules, scripts string) {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop check cannot run: %s (with CI=true it must; make test provisions node packages with make setup-node)", msg)
		}
		t.Skipf("interop check skipped: %s; run make setup-node, or go test via make test", msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("no node on PATH")
	}
	modules = os.Getenv("DISTILL_NODE_MODULES")
	if modules == "" {
		modules = findUp(t, filepath.Join(".cache", "node", "node_modules"))
		if modules == "" {
			unavailable("DISTILL_NODE_MODULES is not set and no .cache/node/node_modules above the test directory")
		}
	}
	for _, pkg := range interopPackages {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			unavailable("npm package %s not installed in %s", pkg, modules)
		}
	}
	scripts = findUp(t, filepath.Join("scripts", "node"))
	if scripts == "" {
		t.Fatal("no scripts/node directory above the test directory")
	}
	return node, modules, scripts
}

// findUp returns the first dir/rel that exists walking up from the working
// directory, or "".
func findUp(t *testing.T, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, rel)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// interopColumn is what a script reports for one column.
type interopColumn struct {
	Type   string  `json:"type"`
	Nulls  int64   `json:"nulls"`
	Sum    float64 `json:"sum"`
	Values int64   `json:"values"`
	MinLen *int64  `json:"min_len"` // duckdb, list columns
	MaxLen *int64  `json:"max_len"`
	Shape  *string `json:"shape"` // arrow: distill.shape field metadata
}

// interopResult is the JSON object a script prints.
type interopResult struct {
	Reader    string                   `json:"reader"`
	Files     int                      `json:"files"`
	Rows      int64                    `json:"rows"`
	Batches   *int                     `json:"batches"` // arrow only
	LogitsSum *float64                 `json:"logits_sum"`
	Metadata  map[string]string        `json:"metadata"` // arrow only
	Columns   map[string]interopColumn `json:"columns"`
}

// colStats is Go's account of one column: its sum and number of values.
type colStats struct {
	sum    float64
	values int64
	sumAbs float64 // for the tolerance
}

func (s *colStats) addF(v ...float32) {
	for _, x := range v {
		s.sum += float64(x)
		s.sumAbs += math.Abs(float64(x))
	}
	s.values += int64(len(v))
}

// batchStats adds the columns of b to stats, keyed by column name.
func batchStats(stats map[string]*colStats, cfg formats.Config, b *formats.Batch) {
	get := func(name string) *colStats {
		if stats[name] == nil {
			stats[name] = &colStats{}
		}
		return stats[name]
	}
	addInt64(get(formats.ColRow), b.Rows)
	if cfg.HasLabel {
		addInt64(get(formats.ColLabel), b.Labels)
	}
	if cfg.TopK == 0 {
		get(formats.ColLogits).addF(b.Logits...)
	} else {
		s := get(formats.ColTopKIndex)
		for _, x := range b.TopKIndex {
			s.sum += float64(x)
			s.sumAbs += math.Abs(float64(x))
		}
		s.values += int64(len(b.TopKIndex))
		get(formats.ColTopKLogit).addF(b.TopKLogit...)
		get(formats.ColLogSumExp).addF(b.LogSumExp...)
	}
	for _, h := range cfg.Hidden {
		get(formats.HiddenPrefix + h.Name).addF(b.Hidden[h.Name]...)
	}
	for _, in := range cfg.Inputs {
		get(formats.InputPrefix + in.Name).addF(b.Inputs[in.Name]...)
	}
}

func addInt64(s *colStats, v []int64) {
	for _, x := range v {
		s.sum += float64(x)
		s.sumAbs += math.Abs(float64(x))
	}
	s.values += int64(len(v))
}

// interopBatch returns rows [first, first+n) for cfg. Scores, hidden and
// input values are multiples of 1/8 in [-8, 8], exact in float16, so the
// sums of what was written and what any reader decodes agree up to
// summation order. Top-k columns are filled from full logits with
// formats.TopK, as extract does.
func interopBatch(cfg formats.Config, first int64, n int) *formats.Batch {
	// A small linear congruential sequence: deterministic, no shared rand.
	state := uint64(first)*2654435761 + 12345
	val := func() float32 {
		state = state*6364136223846793005 + 1442695040888963407
		return float32(int(state>>33)%129-64) / 8
	}
	b := &formats.Batch{}
	logits := make([]float32, 0, n*cfg.Classes)
	for i := range n {
		b.Rows = append(b.Rows, first+int64(i))
		if cfg.HasLabel {
			b.Labels = append(b.Labels, (first+int64(i))%int64(cfg.Classes))
		}
		for range cfg.Classes {
			logits = append(logits, val())
		}
	}
	if k := cfg.TopK; k == 0 {
		b.Logits = logits
	} else {
		b.TopKIndex = make([]int32, n*k)
		b.TopKLogit = make([]float32, n*k)
		b.LogSumExp = make([]float32, n)
		for r := range n {
			b.LogSumExp[r] = formats.TopK(b.TopKIndex[r*k:(r+1)*k], b.TopKLogit[r*k:(r+1)*k], logits[r*cfg.Classes:(r+1)*cfg.Classes])
		}
	}
	fill := func(specs []formats.TensorSpec) map[string][]float32 {
		if len(specs) == 0 {
			return nil
		}
		m := map[string][]float32{}
		for _, s := range specs {
			v := make([]float32, n*s.Size())
			for i := range v {
				v[i] = val()
			}
			m[s.Name] = v
		}
		return m
	}
	b.Hidden = fill(cfg.Hidden)
	b.Inputs = fill(cfg.Inputs)
	return b
}

func TestInterop(t *testing.T) {
	node, modules, scripts := interopEnv(t)
	hidden := []formats.TensorSpec{
		{Name: "h", Shape: []int64{2, 3}},
		{Name: "/l2/Relu_output_0", Shape: []int64{5}, Dtype: formats.Float16}, // a real ONNX name: slashes, quoted in SQL
	}
	inputs := []formats.TensorSpec{{Name: "image", Shape: []int64{1, 2, 2}}}
	pq, ipc := formats.FormatParquet, formats.FormatArrow
	none, lz4, zstd := formats.CompressionNone, formats.CompressionLZ4, formats.CompressionZstd
	const duckdb, arrowJS = "duckdb_sum.mjs", "arrow_read.mjs"
	cases := []struct {
		name   string
		script string
		cfg    formats.Config
		format formats.Format
		comp   formats.Compression
	}{
		{"parquet-zstd-f32", duckdb, formats.Config{Classes: 10, HasLabel: true, Hidden: hidden, Inputs: inputs}, pq, zstd},
		{"parquet-lz4-f16", duckdb, formats.Config{Classes: 10, ScoreDtype: formats.Float16, HasLabel: true, Hidden: hidden}, pq, lz4},
		{"parquet-none-f16", duckdb, formats.Config{Classes: 7, ScoreDtype: formats.Float16}, pq, none},
		{"parquet-zstd-topk-f16", duckdb, formats.Config{Classes: 10, TopK: 3, ScoreDtype: formats.Float16, HasLabel: true, Hidden: hidden}, pq, zstd},
		{"arrow-none-f32", arrowJS, formats.Config{Classes: 10, HasLabel: true, Hidden: hidden, Inputs: inputs}, ipc, none},
		{"arrow-lz4-f32", arrowJS, formats.Config{Classes: 10, HasLabel: true, Hidden: hidden}, ipc, lz4},
		{"arrow-zstd-f16", arrowJS, formats.Config{Classes: 10, ScoreDtype: formats.Float16, Hidden: hidden}, ipc, zstd},
		{"arrow-zstd-topk-f32", arrowJS, formats.Config{Classes: 10, TopK: 4, HasLabel: true, Inputs: inputs}, ipc, zstd},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Two parts of 10 and 13 rows in batches of 4: several record
			// batches / row groups per part, the last one short.
			const rowsPerBatch = 4
			partRows := []int{10, 13}
			dir := filepath.Join(t.TempDir(), "cache")
			m := formats.Manifest{Teacher: formats.Teacher{File: "teacher.onnx", SHA256: strings.Repeat("ab", 32)}}
			cw, err := formats.CreateCache(dir, m, tc.cfg, &formats.WriterOptions{Format: tc.format, Compression: tc.comp, RowsPerBatch: rowsPerBatch})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]*colStats{}
			var rows int64
			wantBatches := 0
			for _, n := range partRows {
				b := interopBatch(tc.cfg, rows, n)
				if _, err := cw.WritePart(b); err != nil {
					t.Fatal(err)
				}
				batchStats(want, tc.cfg, b)
				rows += int64(n)
				wantBatches += (n + rowsPerBatch - 1) / rowsPerBatch
			}
			if err := cw.Close(); err != nil {
				t.Fatal(err)
			}

			// Go reads back what it wrote: the reference the scripts must match.
			c, err := formats.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			goRead := map[string]*colStats{}
			for b, err := range c.All() {
				if err != nil {
					t.Fatal(err)
				}
				batchStats(goRead, tc.cfg, b)
			}
			for name, w := range want {
				if g := goRead[name]; g == nil || g.sum != w.sum || g.values != w.values {
					t.Fatalf("formats reads column %s as %+v, wrote %+v", name, goRead[name], w)
				}
			}

			got := runInteropScript(t, node, modules, filepath.Join(scripts, tc.script), dir)
			t.Logf("%s: %d rows, logits sum %v", got.Reader, got.Rows, fmtPtr(got.LogitsSum))
			if got.Rows != rows {
				t.Errorf("%s read %d rows, want %d", got.Reader, got.Rows, rows)
			}
			if got.Files != len(partRows) {
				t.Errorf("%s read %d files, want %d", got.Reader, got.Files, len(partRows))
			}
			if got.Batches != nil && *got.Batches != wantBatches {
				t.Errorf("%s read %d record batches, want %d", got.Reader, *got.Batches, wantBatches)
			}
			if tc.cfg.TopK == 0 {
				if got.LogitsSum == nil || !closeSum(*got.LogitsSum, want[formats.ColLogits]) {
					t.Errorf("%s: sum of logits %v, Go %v", got.Reader, fmtPtr(got.LogitsSum), want[formats.ColLogits].sum)
				}
			}
			widths := columnWidths(tc.cfg)
			if len(got.Columns) != len(want) {
				t.Errorf("%s sees columns %v, want %d columns", got.Reader, keys(got.Columns), len(want))
			}
			for name, w := range want {
				col, ok := got.Columns[name]
				if !ok {
					t.Errorf("%s: no column %q (has %v)", got.Reader, name, keys(got.Columns))
					continue
				}
				if wantType := readerType(tc.script, tc.cfg, name, widths[name]); !typeMatches(col.Type, wantType) {
					t.Errorf("%s: column %s has type %s, want %s", got.Reader, name, col.Type, wantType)
				}
				if col.Nulls != 0 {
					t.Errorf("%s: column %s has %d nulls", got.Reader, name, col.Nulls)
				}
				if col.Values != w.values {
					t.Errorf("%s: column %s has %d values, want %d", got.Reader, name, col.Values, w.values)
				}
				if !closeSum(col.Sum, w) {
					t.Errorf("%s: column %s sums to %v, Go %v", got.Reader, name, col.Sum, w.sum)
				}
				if col.MinLen != nil && (*col.MinLen != int64(widths[name]) || *col.MaxLen != int64(widths[name])) {
					t.Errorf("%s: column %s has lists of %d..%d values, want %d", got.Reader, name, *col.MinLen, *col.MaxLen, widths[name])
				}
			}
			if tc.script == arrowJS {
				checkArrowMetadata(t, got, tc.cfg)
			}
		})
	}
}

// runInteropScript runs node script dir and decodes its JSON output.
func runInteropScript(t *testing.T, node, modules, script, dir string) interopResult {
	t.Helper()
	// DuckDB starts in well under a second; a minute is generous on a
	// loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, dir)
	cmd.Env = append(os.Environ(), "DISTILL_NODE_MODULES="+modules)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 && os.Getenv("CI") != "true" {
			t.Skipf("interop check skipped: %s", strings.TrimSpace(stderr.String()))
		}
		t.Fatalf("node %s %s: %v\nstderr:\n%s", filepath.Base(script), dir, err, stderr.String())
	}
	var res interopResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("node %s: output is not the expected JSON: %v\n%s", filepath.Base(script), err, stdout.String())
	}
	return res
}

// closeSum reports whether a reader's sum matches Go's up to float64
// rounding from a different summation order: a relative 1e-9 of Σ|x|
// (float32 inputs summed in float64 lose far less than that).
func closeSum(got float64, want *colStats) bool {
	return math.Abs(got-want.sum) <= 1e-9*(1+want.sumAbs)
}

// columnWidths maps each column name to its values per row (0 for scalars).
func columnWidths(cfg formats.Config) map[string]int {
	w := map[string]int{formats.ColRow: 0, formats.ColLabel: 0, formats.ColLogSumExp: 0,
		formats.ColLogits: cfg.Classes, formats.ColTopKIndex: cfg.TopK, formats.ColTopKLogit: cfg.TopK}
	for _, h := range cfg.Hidden {
		w[formats.HiddenPrefix+h.Name] = h.Size()
	}
	for _, in := range cfg.Inputs {
		w[formats.InputPrefix+in.Name] = in.Size()
	}
	return w
}

// readerType is the type a reader reports for a column: DuckDB's SQL type
// ("FLOAT[]": Parquet has no fixed-size lists, and float16 reads as FLOAT;
// a trailing "[]" also matches DuckDB's ARRAY "FLOAT[n]") or
// apache-arrow's type string ("FixedSizeList[10]<Float16>").
func readerType(script string, cfg formats.Config, name string, width int) string {
	elem := "float32"
	switch {
	case name == formats.ColRow || name == formats.ColLabel:
		elem = "int64"
	case name == formats.ColTopKIndex:
		elem = "int32"
	case name == formats.ColLogits || name == formats.ColTopKLogit:
		if cfg.ScoreDtype == formats.Float16 {
			elem = "float16"
		}
	case strings.HasPrefix(name, formats.HiddenPrefix):
		for _, h := range cfg.Hidden {
			if formats.HiddenPrefix+h.Name == name && h.Dtype == formats.Float16 {
				elem = "float16"
			}
		}
	}
	if script == "duckdb_sum.mjs" {
		t := map[string]string{"int64": "BIGINT", "int32": "INTEGER", "float32": "FLOAT", "float16": "FLOAT"}[elem]
		if width > 0 {
			t += "[]"
		}
		return t
	}
	t := map[string]string{"int64": "Int64", "int32": "Int32", "float32": "Float32", "float16": "Float16"}[elem]
	if width > 0 {
		t = fmt.Sprintf("FixedSizeList[%d]<%s>", width, t)
	}
	return t
}

// typeMatches compares a reader's type with readerType's, accepting a
// DuckDB ARRAY ("FLOAT[10]") where a LIST ("FLOAT[]") is expected.
func typeMatches(got, want string) bool {
	if got == want {
		return true
	}
	base, ok := strings.CutSuffix(want, "[]")
	if !ok || !strings.HasPrefix(got, base+"[") || !strings.HasSuffix(got, "]") {
		return false
	}
	_, err := strconv.Atoi(got[len(base)+1 : len(got)-1])
	return err == nil
}

// checkArrowMetadata checks that apache-arrow sees the schema and field
// metadata that make a part file self-describing.
func checkArrowMetadata(t *testing.T, got interopResult, cfg formats.Config) {
	t.Helper()
	for k, v := range map[string]string{
		formats.MetaVersion: formats.Version,
		formats.MetaClasses: strconv.Itoa(cfg.Classes),
		formats.MetaTopK:    strconv.Itoa(cfg.TopK),
		formats.MetaTeacher: strings.Repeat("ab", 32),
	} {
		if got.Metadata[k] != v {
			t.Errorf("apache-arrow: schema metadata %s = %q, want %q", k, got.Metadata[k], v)
		}
	}
	var m formats.Manifest
	if err := json.Unmarshal([]byte(got.Metadata[formats.MetaManifest]), &m); err != nil || m.Classes != cfg.Classes {
		t.Errorf("apache-arrow: schema metadata %s does not hold the manifest (err %v): %.200q", formats.MetaManifest, err, got.Metadata[formats.MetaManifest])
	}
	specs := append(append([]formats.TensorSpec{}, cfg.Hidden...), cfg.Inputs...)
	for i, s := range specs {
		name := formats.HiddenPrefix + s.Name
		if i >= len(cfg.Hidden) {
			name = formats.InputPrefix + s.Name
		}
		shape, _ := json.Marshal(s.Shape)
		if col := got.Columns[name]; col.Shape == nil || *col.Shape != string(shape) {
			t.Errorf("apache-arrow: column %s has %s %v, want %s", name, formats.MetaShape, fmtPtr(col.Shape), shape)
		}
	}
}

func fmtPtr[T any](p *T) string {
	if p == nil {
		return "<none>"
	}
	return fmt.Sprint(*p)
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
