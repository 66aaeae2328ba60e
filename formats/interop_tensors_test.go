package formats

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Interop of hidden-state and input columns (interop_test.go covers the
// score columns): DuckDB and apache-arrow for JavaScript read caches with
// hidden.* and input.* fixed-size lists, their shape metadata, labels and
// top-k, through scripts/node/duckdb_sum.mjs and arrow_read.mjs. Without
// node and the npm packages (make setup-node) the test skips, except under
// CI=true where it fails.

// nodeTool returns the node binary and the script path, or skips.
func nodeTool(t *testing.T, script string) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("interop readers are slow to start (-short)")
	}
	missing := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop reader unavailable under CI: %s (run make setup-node)", why)
		}
		t.Skipf("interop reader unavailable: %s (run make setup-node)", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("no node on PATH")
	}
	mods := os.Getenv("DISTILL_NODE_MODULES")
	if mods == "" {
		mods = filepath.Join("..", ".cache", "node", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(mods, "apache-arrow")); err != nil {
		missing("no npm packages in " + mods)
	}
	abs, _ := filepath.Abs(mods)
	t.Setenv("DISTILL_NODE_MODULES", abs)
	return node, filepath.Join("..", "scripts", "node", script)
}

type interopColumn struct {
	Type   string   `json:"type"`
	Nulls  float64  `json:"nulls"`
	Sum    float64  `json:"sum"`
	Values float64  `json:"values"`
	MinLen *float64 `json:"min_len"`
	MaxLen *float64 `json:"max_len"`
	Shape  *string  `json:"shape"`
}

type interopResult struct {
	Reader   string                   `json:"reader"`
	Files    int                      `json:"files"`
	Rows     int64                    `json:"rows"`
	Batches  int                      `json:"batches"`
	Metadata map[string]string        `json:"metadata"`
	Columns  map[string]interopColumn `json:"columns"`
}

// columnSums returns, per column name, the float64 sum and value count of
// everything in the cache as read by this package.
func columnSums(t *testing.T, c *Cache) (map[string]float64, map[string]int) {
	sums, counts := map[string]float64{}, map[string]int{}
	addF := func(name string, v []float32) {
		for _, x := range v {
			sums[name] += float64(x)
		}
		counts[name] += len(v)
	}
	cfg := c.Config()
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range b.Rows {
			sums[ColRow] += float64(x)
		}
		counts[ColRow] += b.Len()
		if cfg.HasLabel {
			for _, x := range b.Labels {
				sums[ColLabel] += float64(x)
			}
			counts[ColLabel] += b.Len()
		}
		if cfg.TopK == 0 {
			addF(ColLogits, b.Logits)
		} else {
			for _, x := range b.TopKIndex {
				sums[ColTopKIndex] += float64(x)
			}
			counts[ColTopKIndex] += len(b.TopKIndex)
			addF(ColTopKLogit, b.TopKLogit)
			addF(ColLogSumExp, b.LogSumExp)
		}
		for _, h := range cfg.Hidden {
			addF(HiddenPrefix+h.Name, b.Hidden[h.Name])
		}
		for _, in := range cfg.Inputs {
			addF(InputPrefix+in.Name, b.Inputs[in.Name])
		}
	}
	return sums, counts
}

func runInterop(t *testing.T, node, script, dir string) interopResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(node, script, dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(script), dir, err, stderr.String())
	}
	var res interopResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%s output %q: %v", filepath.Base(script), stdout.String(), err)
	}
	return res
}

func TestInteropTensors(t *testing.T) {
	cases := []struct {
		cfgName string
		opts    WriterOptions
	}{
		{"hidden", WriterOptions{Format: FormatParquet}},
		{"inputs", WriterOptions{Format: FormatParquet, Compression: CompressionLZ4}},
		{"hidden", WriterOptions{Format: FormatArrow, Compression: CompressionLZ4}},
		{"inputs", WriterOptions{Format: FormatArrow, Compression: CompressionZstd}},
	}
	for _, tc := range cases {
		o := must(tc.opts.resolve(testConfigs[tc.cfgName]))
		name := string(o.Format) + "-" + string(o.Compression) + "/" + tc.cfgName
		t.Run(name, func(t *testing.T) {
			script := "arrow_read.mjs"
			if o.Format == FormatParquet {
				script = "duckdb_sum.mjs"
			}
			node, script := nodeTool(t, script)
			cfg := testConfigs[tc.cfgName]
			dir := t.TempDir()
			o.RowsPerBatch = 4
			writeCache(t, dir, testManifest(0, 1), cfg, &o, 1000, 6, 3)
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sums, counts := columnSums(t, c)
			res := runInterop(t, node, script, dir)
			t.Logf("%s: %d files, %d rows", res.Reader, res.Files, res.Rows)
			if res.Files != 2 || res.Rows != 9 {
				t.Errorf("%s read %d files, %d rows; want 2 and 9", res.Reader, res.Files, res.Rows)
			}
			if o.Format == FormatArrow && res.Batches != 3 {
				t.Errorf("%s read %d record batches, want 3", res.Reader, res.Batches)
			}
			ncfg, _ := cfg.normalize()
			if len(res.Columns) != len(ncfg.columns()) {
				t.Errorf("%s sees %d columns, want %d: %v", res.Reader, len(res.Columns), len(ncfg.columns()), res.Columns)
			}
			for _, col := range ncfg.columns() {
				got, ok := res.Columns[col.name]
				if !ok {
					t.Errorf("%s: no column %q", res.Reader, col.name)
					continue
				}
				if got.Nulls != 0 || int(got.Values) != counts[col.name] {
					t.Errorf("%s: column %s: %v nulls, %v values; want 0 and %d", res.Reader, col.name, got.Nulls, got.Values, counts[col.name])
				}
				if want := sums[col.name]; math.Abs(got.Sum-want) > 1e-6*math.Max(1, math.Abs(want)) {
					t.Errorf("%s: column %s sums to %v, want %v", res.Reader, col.name, got.Sum, want)
				}
				if col.width > 0 && got.MinLen != nil && (int(*got.MinLen) != col.width || int(*got.MaxLen) != col.width) {
					t.Errorf("%s: column %s lists of %v..%v values, want %d", res.Reader, col.name, *got.MinLen, *got.MaxLen, col.width)
				}
				if o.Format == FormatArrow {
					if col.width > 0 && !strings.Contains(got.Type, "FixedSizeList") {
						t.Errorf("%s: column %s is %s, want a FixedSizeList", res.Reader, col.name, got.Type)
					}
					if col.shape != nil && (got.Shape == nil || *got.Shape != string(must(json.Marshal(col.shape)))) {
						t.Errorf("%s: column %s shape metadata %v, want %v", res.Reader, col.name, got.Shape, col.shape)
					}
				}
			}
			if o.Format == FormatArrow && (res.Metadata[MetaVersion] != Version || res.Metadata[MetaManifest] == "") {
				t.Errorf("%s: schema metadata %v", res.Reader, res.Metadata)
			}
		})
	}
}
