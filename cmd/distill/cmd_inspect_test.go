package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// testTeacherSHA is a made-up teacher digest; inspect shows its first 12 digits.
var testTeacherSHA = "0123456789abcdef" + strings.Repeat("0", 48)

// inspectTestCache writes a cache to dir with parts of the given row counts.
// Row i has score 2 for class i%C and 0 for the others, so its softmax is
// e²/(e²+C−1) for that class and 1/(e²+C−1) for each other one.
func inspectTestCache(t *testing.T, dir string, cfg formats.Config, opts *formats.WriterOptions, shard, shards int, parts ...int) {
	t.Helper()
	m := formats.Manifest{
		Teacher:  formats.Teacher{File: "teacher.onnx", SHA256: testTeacherSHA, ScoreTensor: "logits"},
		Dataset:  formats.Dataset{Path: "mnist.parquet", Rows: 1000, Preprocessing: []string{"scale 1/255", "reshape 1,28,28"}},
		Settings: formats.Settings{BatchSize: 64, ShardIndex: shard, ShardCount: shards},
		Tool:     "distill test",
	}
	cw, err := formats.CreateCache(dir, m, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	var first int64
	for _, n := range parts {
		b := &formats.Batch{}
		for i := range n {
			row := first + int64(i)
			b.Rows = append(b.Rows, row)
			if cfg.HasLabel {
				b.Labels = append(b.Labels, row%int64(cfg.Classes))
			}
			for c := range cfg.Classes {
				v := float32(0)
				if int64(c) == row%int64(cfg.Classes) {
					v = 2
				}
				b.Logits = append(b.Logits, v)
			}
			for _, h := range cfg.Hidden {
				if b.Hidden == nil {
					b.Hidden = map[string][]float32{}
				}
				b.Hidden[h.Name] = append(b.Hidden[h.Name], make([]float32, h.Size())...)
			}
		}
		if _, err := cw.WritePart(b); err != nil { // top-k columns are derived from the logits
			t.Fatal(err)
		}
		first += int64(n)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
}

// runInspectCmd runs `distill inspect args...` in-process.
func runInspectCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(append([]string{"inspect"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// mustContain checks that out has each of wants, comparing with runs of
// spaces collapsed to one (tabwriter's padding depends on the widest cell).
func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	squeeze := func(s string) string {
		return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = squeeze(l)
	}
	flat := strings.Join(lines, "\n")
	for _, w := range wants {
		if !strings.Contains(flat, squeeze(w)) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestInspectGoodCache(t *testing.T) {
	dir := t.TempDir()
	cfg := formats.Config{Classes: 10, HasLabel: true, Hidden: []formats.TensorSpec{{Name: "/fc1/Relu_output_0", Shape: []int64{2, 3}, Dtype: formats.Float16}}}
	inspectTestCache(t, dir, cfg, &formats.WriterOptions{Format: formats.FormatParquet, RowsPerBatch: 4}, 0, 1, 6, 5)
	code, out, errOut := runInspectCmd(t, dir, "--verify")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	mustContain(t, out,
		"rows     11\n",
		"2 parquet files, 4 batches of up to 4 rows",
		"bytes/sample",
		"values uncompressed 68 bytes/sample", // row 8 + label 8 + 10 float32 logits 40 + 6 float16 hidden 12
		"logits              fixed_size_list<item: float32>[10]",
		"hidden./fc1/Relu_output_0  fixed_size_list<item: float16>[6]  shape [2,3]",
		"teacher         teacher.onnx, sha256 0123456789ab…",
		"score kind      logits",
		"score tensor    logits",
		"dataset         mnist.parquet, 1000 rows",
		"preprocessing   scale 1/255; reshape 1,28,28",
		"top-k           off: all 10 scores stored",
		"hidden          /fc1/Relu_output_0 [2,3] float16",
		"shard           0 of 1",
		"storage         parquet, compression zstd, 4 rows per batch",
		"tool version    distill test",
		"first rows: top-5 classes",
		"verify: OK: 2 parts, 4 batches, 11 rows",
	)
	// Row 1: class 1 has e²/(e²+9) = 0.4509, the others 1/(e²+9) = 0.0610 each,
	// ties listed by class; rest = 5 × 0.0610.
	mustContain(t, out, "row 1  label 1  1: 0.4509  0: 0.0610  2: 0.0610  3: 0.0610  4: 0.0610  rest 0.3051")
	if strings.Contains(out, "row 3") {
		t.Errorf("printed more than the default 3 rows:\n%s", out)
	}
}

func TestInspectTopKJSON(t *testing.T) {
	dir := t.TempDir()
	cfg := formats.Config{Classes: 10, TopK: 3, ScoreDtype: formats.Float16, HasLabel: true}
	inspectTestCache(t, dir, cfg, &formats.WriterOptions{Format: formats.FormatArrow, Compression: formats.CompressionLZ4, RowsPerBatch: 3}, 0, 1, 7)
	code, out, errOut := runInspectCmd(t, dir, "--json", "--rows", "4", "--verify")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep formats.Summary
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output does not decode: %v\n%s", err, out)
	}
	if rep.Rows != 7 || rep.Parts != 1 || rep.Batches != 3 || rep.Bytes <= 0 || rep.Verify == nil || !rep.Verify.OK {
		t.Errorf("report rows %d parts %d batches %d bytes %d verify %+v", rep.Rows, rep.Parts, rep.Batches, rep.Bytes, rep.Verify)
	}
	if rep.Manifest.Teacher.SHA256 != testTeacherSHA || rep.Manifest.Settings.TopK != 3 || rep.Manifest.Parts != nil {
		t.Errorf("manifest in report: %+v", rep.Manifest)
	}
	var names []string
	for _, c := range rep.Schema {
		names = append(names, c.Name+" "+c.Type)
	}
	if got, want := strings.Join(names, ", "), "row int64, label int64, topk_index fixed_size_list<item: int32>[3], topk_logit fixed_size_list<item: float16>[3], logsumexp float32"; got != want {
		t.Errorf("schema %s, want %s", got, want)
	}
	if len(rep.FirstRows) != 4 {
		t.Fatalf("%d first rows, want 4", len(rep.FirstRows))
	}
	// Only the top 3 of 10 scores are stored, but logsumexp covers all 10,
	// so the probabilities equal the full softmax: e²/(e²+9), then 1/(e²+9).
	e2 := math.Exp(2)
	for i, r := range rep.FirstRows {
		if r.Row != int64(i) || r.Label == nil || *r.Label != int64(i) || len(r.Top) != 3 {
			t.Fatalf("first row %d: %+v", i, r)
		}
		hi, lo := formats.JSONFloat(e2/(e2+9)), formats.JSONFloat(1/(e2+9))
		want := []formats.ClassProb{{Class: i, P: hi}, {Class: 0, P: lo}, {Class: 1, P: lo}}
		if i == 0 {
			want[1].Class, want[2].Class = 1, 2
		} else if i == 1 {
			want[2].Class = 2
		}
		for j, w := range want {
			// 1e-6: the scores 0 and 2 are exact in float16; logsumexp is
			// stored as float32 (relative error 6e-8 on log(e²+9) ≈ 2.8).
			if r.Top[j].Class != w.Class || math.Abs(float64(r.Top[j].P-w.P)) > 1e-6 {
				t.Errorf("row %d top %d = %+v, want %+v", i, j, r.Top[j], w)
			}
		}
		if wantRest := 7 / (e2 + 9); math.Abs(float64(r.Rest)-wantRest) > 1e-6 {
			t.Errorf("row %d rest %v, want %v", i, r.Rest, wantRest)
		}
	}
}

// flipByte inverts one bit of the byte in the middle of path.
func flipByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInspectCorruptPart(t *testing.T) {
	for _, format := range []formats.Format{formats.FormatParquet, formats.FormatArrow} {
		t.Run(string(format), func(t *testing.T) {
			dir := t.TempDir()
			inspectTestCache(t, dir, formats.Config{Classes: 4, HasLabel: true}, &formats.WriterOptions{Format: format, RowsPerBatch: 4}, 0, 1, 5, 5)
			m, err := formats.ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, filepath.Join(dir, m.Parts[1].File))

			// Without --verify the damage in the second part goes unnoticed:
			// inspect reads only the manifest and the first rows.
			if code, out, errOut := runInspectCmd(t, dir); code != exitOK {
				t.Fatalf("inspect without --verify: exit %d\n%s\n%s", code, out, errOut)
			}
			code, out, errOut := runInspectCmd(t, dir, "--verify")
			if code != exitFailure {
				t.Fatalf("inspect --verify: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errOut)
			}
			mustContain(t, out, "verify: FAILED: 1 problem", m.Parts[1].File, "sha256", "manifest says")
			mustContain(t, errOut, "cache failed verification")

			// A first part whose footer is gone cannot be read even without --verify.
			path := filepath.Join(dir, m.Parts[0].File)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			clear(data[len(data)-8:]) // the trailing magic, PAR1 or ARROW1
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errOut = runInspectCmd(t, dir)
			if code != exitFailure || !strings.Contains(errOut, "reading the first rows") || !strings.Contains(errOut, "part-00000") {
				t.Fatalf("inspect with a broken first part: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

func TestInspectNonFinite(t *testing.T) {
	dir := t.TempDir()
	cw, err := formats.CreateCache(dir, formats.Manifest{Teacher: formats.Teacher{File: "t.onnx", SHA256: testTeacherSHA}}, formats.Config{Classes: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nan := float32(math.NaN())
	if _, err := cw.WritePart(&formats.Batch{Rows: []int64{7, 8, 9}, Logits: []float32{0, 1, nan, 0, 1, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runInspectCmd(t, dir, "--verify")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, out)
	}
	// Row 8's probabilities are NaN: shown, and null in --json.
	mustContain(t, out, "1 rows with NaN or Inf values, first row ids [8]", "row 8 1: NaN 0: NaN rest NaN")
	code, out, errOut := runInspectCmd(t, dir, "--json")
	var rep formats.Summary
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil {
		t.Fatalf("--json: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	if p := rep.FirstRows[1].Top[0].P; !math.IsNaN(float64(p)) || !strings.Contains(out, `"p": null`) {
		t.Errorf("NaN probability encoded as %v:\n%s", p, out)
	}
}

func TestInspectMissingShard(t *testing.T) {
	parent := t.TempDir()
	cfg := formats.Config{Classes: 3}
	opts := &formats.WriterOptions{Format: formats.FormatParquet}
	for _, i := range []int{0, 2} { // shard 1 of 3 never written
		inspectTestCache(t, filepath.Join(parent, formats.ShardDirName(i, 3)), cfg, opts, i, 3, 4)
	}
	code, out, errOut := runInspectCmd(t, parent, "--rows", "0")
	if code != exitOK {
		t.Fatalf("inspect: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	mustContain(t, out, "rows     8\n", "shards     2 of 3 present, missing 1", "shard 0", "shard 2")
	if strings.Contains(out, "first rows") {
		t.Errorf("--rows 0 printed rows:\n%s", out)
	}

	code, out, errOut = runInspectCmd(t, parent, "--verify", "--rows", "0")
	if code != exitFailure {
		t.Fatalf("inspect --verify: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errOut)
	}
	mustContain(t, out, "verify: FAILED: 1 problem", "  missing shard 1 of 3 (directory shard-00001-of-00003)\n")

	// The shard directories named one by one work the same way.
	code, out, _ = runInspectCmd(t, filepath.Join(parent, formats.ShardDirName(0, 3)), filepath.Join(parent, formats.ShardDirName(2, 3)), "--json", "--rows", "0")
	var rep formats.Summary
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if rep.ShardCount != 3 || len(rep.Shards) != 2 || len(rep.MissingShards) != 1 || rep.MissingShards[0] != 1 {
		t.Errorf("shards %d %+v missing %v", rep.ShardCount, rep.Shards, rep.MissingShards)
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "want at least one cache directory"},
		{[]string{dir, "--rows", "-1"}, exitUsage, "--rows -1"},
		{[]string{filepath.Join(dir, "nope")}, exitFailure, "manifest.json"},
	} {
		code, out, errOut := runInspectCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("inspect %q: exit %d (want %d), stderr %q (want %q)\n%s", tc.args, code, tc.code, errOut, tc.want, out)
		}
	}
}

func TestInspectLogitsNPY(t *testing.T) {
	dir := t.TempDir()
	cfg := formats.Config{Classes: 4, HasLabel: true}
	inspectTestCache(t, dir, cfg, &formats.WriterOptions{Format: formats.FormatArrow, RowsPerBatch: 3}, 0, 1, 5, 4)
	npy := filepath.Join(t.TempDir(), "logits.npy")
	if code, out, errOut := runInspectCmd(t, dir, "--rows", "0", "--logits-npy", npy); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	ds, err := dataset.Open(npy, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var b dataset.Batch
	if err := ds.Read(0, ds.Len(), &b); err != nil {
		t.Fatal(err)
	}
	got := b.Cols[ds.Columns()[0].Name]
	if ds.Len() != 9 || len(got) != 36 {
		t.Fatalf("npy has %d rows, %d values; want 9 and 36", ds.Len(), len(got))
	}
	for r := 0; r < 9; r++ {
		for c := 0; c < 4; c++ {
			want := float32(0)
			if c == r%4 {
				want = 2
			}
			if got[r*4+c] != want {
				t.Fatalf("row %d class %d = %v, want %v", r, c, got[r*4+c], want)
			}
		}
	}
	top := t.TempDir()
	inspectTestCache(t, top, formats.Config{Classes: 4, TopK: 2}, nil, 0, 1, 3)
	if code, _, errOut := runInspectCmd(t, top, "--rows", "0", "--logits-npy", npy); code != exitFailure || !strings.Contains(errOut, "top-2") {
		t.Errorf("top-k cache: exit %d, %s", code, errOut)
	}
}
