package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// seqWindows returns n windows of T+1 token ids below V and n·T·V random
// logits, the targets of each window's T positions.
func seqWindows(n, T, V int) ([][]int32, []float32) {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(T*V)))
	win := make([][]int32, n)
	for r := range win {
		for range T + 1 {
			win[r] = append(win[r], int32(rng.IntN(V)))
		}
	}
	logits := make([]float32, n*T*V)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	return win, logits
}

// writeSeqCache writes the windows as a per-token cache (inputs the first
// T ids, labels the last T, with the logits as targets; top-k when topK >
// 0) in parts of 3 rows, the rows in the order given.
func writeSeqCache(t *testing.T, dir string, win [][]int32, logits []float32, T, V, topK int, order []int) {
	t.Helper()
	cfg := formats.Config{Classes: V, Positions: T, TopK: topK, HasLabel: true, Inputs: []formats.TensorSpec{{Name: "input_ids", Shape: []int64{int64(T)}}}}
	m := formats.Manifest{Teacher: formats.Teacher{File: "teacher.onnx", SHA256: fixtures.TeacherSHA}, Dataset: formats.Dataset{Path: "tokens", Rows: int64(len(win))}}
	cw, err := formats.CreateCache(dir, m, cfg, &formats.WriterOptions{RowsPerBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	for part := range slices.Chunk(order, 3) {
		b := &formats.Batch{Inputs: map[string][]float32{}}
		for _, r := range part {
			b.Rows = append(b.Rows, int64(r))
			for t := range T {
				b.Inputs["input_ids"] = append(b.Inputs["input_ids"], float32(win[r][t]))
				b.Labels = append(b.Labels, int64(win[r][t+1]))
			}
			b.Logits = append(b.Logits, logits[r*T*V:(r+1)*T*V]...)
		}
		if _, err := cw.WritePart(b); err != nil { // top-k columns are derived from the logits
			t.Fatal(err)
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
}

// readNPY reads a whole .npy file: its per-row shape and values.
func readNPY(t *testing.T, path string, rows int, want dataset.DType) ([]int, []float32) {
	t.Helper()
	ds, err := dataset.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	cols := ds.Columns()
	if len(cols) != 1 || cols[0].DType != want || ds.Len() != rows {
		t.Fatalf("%s: columns %+v, %d rows; want one %v column of %d rows", filepath.Base(path), cols, ds.Len(), want, rows)
	}
	var b dataset.Batch
	if err := ds.Read(0, rows, &b); err != nil {
		t.Fatal(err)
	}
	return cols[0].Shape, b.Cols[cols[0].Name]
}

// TestInspectNPYDir exports per-token caches with inspect --npy-dir and
// checks every array against the windows and logits the caches were
// written from: the tokens, the top-k ids (sorted here from the raw
// logits), their logits and the logsumexp over all V for a top-k cache,
// the logits for a dense one, rows in row-id order though written shuffled.
func TestInspectNPYDir(t *testing.T) {
	const n, T, V, k = 7, 5, 11, 3
	win, logits := seqWindows(n, T, V)
	order := []int{4, 0, 6, 2, 1, 5, 3}
	tmp := t.TempDir()
	topk, dense := filepath.Join(tmp, "topk"), filepath.Join(tmp, "dense")
	writeSeqCache(t, topk, win, logits, T, V, k, order)
	writeSeqCache(t, dense, win, logits, T, V, 0, order)
	out := filepath.Join(tmp, "npy")
	for _, args := range [][]string{{topk, "--npy-split", "val"}, {dense}} {
		if code, _, errOut := runDistill(append([]string{"inspect", "--rows", "0", "--npy-dir", out}, args...)...); code != 0 {
			t.Fatalf("inspect %q: exit %d\n%s", args, code, errOut)
		}
	}
	for _, split := range []string{"val", "train"} {
		shape, tok := readNPY(t, filepath.Join(out, "tokens-"+split+".npy"), n, dataset.Int32)
		if !slices.Equal(shape, []int{T + 1}) {
			t.Fatalf("tokens-%s.npy: rows of %v", split, shape)
		}
		for r := range n {
			for i, id := range win[r] {
				if tok[r*(T+1)+i] != float32(id) {
					t.Fatalf("tokens-%s.npy row %d = %v, want %v", split, r, tok[r*(T+1):(r+1)*(T+1)], win[r])
				}
			}
		}
	}
	_, idx := readNPY(t, filepath.Join(out, "teacher-val-topk-index.npy"), n, dataset.Int32)
	shape, lg := readNPY(t, filepath.Join(out, "teacher-val-topk-logit.npy"), n, dataset.Float32)
	_, lse := readNPY(t, filepath.Join(out, "teacher-val-lse.npy"), n, dataset.Float32)
	if !slices.Equal(shape, []int{T, k}) || len(lse) != n*T {
		t.Fatalf("top-k rows of %v, %d logsumexps", shape, len(lse))
	}
	for q := range n * T {
		row := logits[q*V : (q+1)*V]
		ids := make([]int, V)
		for c := range ids {
			ids[c] = c
		}
		sort.SliceStable(ids, func(a, b int) bool { return row[ids[a]] > row[ids[b]] })
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v))
		}
		if d := math.Abs(float64(lse[q]) - math.Log(z)); d > 1e-5 {
			t.Fatalf("position %d: lse %v, want %v", q, lse[q], math.Log(z))
		}
		for j := range k {
			if idx[q*k+j] != float32(ids[j]) || lg[q*k+j] != row[ids[j]] {
				t.Fatalf("position %d: top-%d ids %v logits %v, want ids %v", q, k, idx[q*k:(q+1)*k], lg[q*k:(q+1)*k], ids[:k])
			}
		}
	}
	shape, all := readNPY(t, filepath.Join(out, "teacher-train-logits.npy"), n, dataset.Float32)
	if !slices.Equal(shape, []int{T, V}) || !slices.Equal(all, logits) {
		t.Errorf("teacher-train-logits.npy: rows of %v, values differ from the cache's logits", shape)
	}
}

// TestInspectNPYDirRefuses: caches seq_targets.py's layout cannot hold, and
// bad flags, are refused with the reason and nothing is written.
func TestInspectNPYDirRefuses(t *testing.T) {
	tmp := t.TempDir()
	classifier := filepath.Join(tmp, "classifier")
	inspectTestCache(t, classifier, formats.Config{Classes: 4, HasLabel: true}, nil, 0, 1, 5)
	shuffled := fixtures.WriteTokenCache(t, filepath.Join(tmp, "random-labels"), 3, 4, 9, false) // labels unrelated to the inputs
	win, logits := seqWindows(2, 4, 9)
	good := filepath.Join(tmp, "good")
	writeSeqCache(t, good, win, logits, 4, 9, 2, []int{0, 1})
	out := filepath.Join(tmp, "npy")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{classifier, "--npy-dir", out}, 1, "not per token; --npy-dir exports a per-token cache"},
		{[]string{shuffled, "--npy-dir", out}, 1, "is not the next input id"},
		{[]string{good, "--npy-dir", out, "--npy-split", "../x"}, 2, "--npy-split \"../x\": want a name of letters"},
		{[]string{good, "--npy-dir", good}, 2, "--npy-dir " + good + " is also the input CACHE"},
		{[]string{good, "--npy-dir", classifier}, 2, "is a cache"},
	} {
		code, _, errOut := runDistill(append([]string{"inspect", "--rows", "0"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("inspect %q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, errOut)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(out, "*")); len(files) > 0 {
		t.Errorf("refused exports wrote %v", files)
	}
}

// TestInspectNPYDirPeer: the PyTorch peer ../shared/peers/torch_seq_kd_train.py
// trains on an --npy-dir export (train and val splits of top-k caches) through
// its --data-dir, reading the shapes and dtypes it checks. It needs Debian's
// python3-torch; without it the test skips, except under CI.
func TestInspectNPYDirPeer(t *testing.T) {
	peers := sharedtest.Dir(t, "peers")
	sharedtest.RequirePyTorch(t)
	if testing.Short() {
		t.Skip("starts PyTorch")
	}
	const T, V, k = 16, 32, 4
	tmp := t.TempDir()
	out := filepath.Join(tmp, "npy")
	for split, n := range map[string]int{"train": 9, "val": 3} {
		win, logits := seqWindows(n, T, V)
		cache := filepath.Join(tmp, split)
		writeSeqCache(t, cache, win, logits, T, V, k, rand.Perm(n))
		if code, _, errOut := runDistill("inspect", cache, "--rows", "0", "--npy-dir", out, "--npy-split", split); code != 0 {
			t.Fatalf("inspect %s: exit %d\n%s", split, code, errOut)
		}
	}
	cmd := exec.Command(sharedtest.Python, filepath.Join(peers, "torch_seq_kd_train.py"), "--data-dir", out, "--targets", "topk",
		"--dim", "8", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--ffn", "16", "--vocab", fmt.Sprint(V), "--seq-len", fmt.Sprint(T),
		"--epochs", "1", "--batch", "4", "--threads", "1", "--alpha", "0.9", "--T", "1")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("torch_seq_kd_train.py: %v\n%s", err, msg)
	}
	var sum struct {
		Targets   string  `json:"targets"`
		TrainSeqs int     `json:"train_seqs"`
		ValSeqs   int     `json:"val_seqs"`
		KL        float64 `json:"val_kl_buckets"`
	}
	_, js, _ := strings.Cut(string(msg), "SUMMARY ")
	if err := json.Unmarshal([]byte(js), &sum); err != nil {
		t.Fatalf("no SUMMARY: %v\n%s", err, msg)
	}
	if sum.Targets != fmt.Sprintf("top-%d", k) || sum.TrainSeqs != 9 || sum.ValSeqs != 3 || !(sum.KL > 0) {
		t.Errorf("the peer read %+v\n%s", sum, msg)
	}
}
