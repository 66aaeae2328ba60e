package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// writeShapedNPY writes a float32 array of shape as a NumPy .npy.
func writeShapedNPY(t *testing.T, path string, shape []int, data []float32) {
	t.Helper()
	if err := dataset.WriteNPYFile(path, shape, data); err != nil {
		t.Fatal(err)
	}
}

// readNPYFloat32 reads a float32 .npy written by NumPy.
func readNPYFloat32(t *testing.T, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hl := int(binary.LittleEndian.Uint16(raw[8:10]))
	body := raw[10+hl:]
	out := make([]float32, len(body)/4)
	binary.Read(bytes.NewReader(body), binary.LittleEndian, out)
	return out
}

// TestCNNAgainstPyTorch builds each preset (and a spec with every token)
// in Go and, from the same spec string, in the PyTorch peer
// (torch_kd_train.py's parse_cnn and make_cnn), loads the Go parameters
// and BatchNorm statistics into the torch module with
// load_state_dict(strict=True), and compares the outputs on the same
// batch in eval mode (running statistics) and in train mode (batch
// statistics): the same network, value for value, within float32
// rounding.
func TestCNNAgainstPyTorch(t *testing.T) {
	sharedtest.RequirePyTorch(t)
	peers := sharedtest.Dir(t, "peers")
	for _, arch := range []string{"lenet5", "tiny", "dws", "conv5x5:4:s2:p1,relu6,avgpool2,dwconv3x3,bn,relu,conv1x1:6,maxpool2,flatten,fc:12,relu,fc:10"} {
		t.Run(strings.Split(arch, ":")[0], func(t *testing.T) {
			dir := t.TempDir()
			n, err := NewCNN(arch, 1, 28, 28, 10)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(4, 2))
			NewParams(n.Params()...)
			n.Init(rng)
			var names []string
			for _, p := range n.Params() {
				writeShapedNPY(t, filepath.Join(dir, p.Name+".npy"), p.Shape, p.Data)
				names = append(names, p.Name)
			}
			for _, l := range n.Layers {
				bn, ok := l.(*BatchNorm2d)
				if !ok {
					continue
				}
				// Running statistics away from 0 and 1, so eval mode uses them.
				for c := range bn.C {
					bn.RunningMean[c] = float32(rng.NormFloat64() * 0.3)
					bn.RunningVar[c] = float32(0.5 + rng.Float64())
				}
				name := strings.TrimSuffix(bn.Gamma.Name, ".weight")
				writeShapedNPY(t, filepath.Join(dir, name+".running_mean.npy"), []int{bn.C}, bn.RunningMean)
				writeShapedNPY(t, filepath.Join(dir, name+".running_var.npy"), []int{bn.C}, bn.RunningVar)
				names = append(names, name+".running_mean", name+".running_var")
			}
			const batch = 5
			x := randMat(rng, batch, n.InSize(), 1)
			for i := range x.Data {
				x.Data[i] = float32(math.Abs(float64(x.Data[i]))) / 3 // pixel-like values
			}
			writeShapedNPY(t, filepath.Join(dir, "x.npy"), []int{batch, 1, 28, 28}, x.Data)
			js, _ := json.Marshal(names)
			os.WriteFile(filepath.Join(dir, "names.json"), js, 0o644)
			script := `
import json, sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import torch_kd_train as k
d = sys.argv[2]
_, layers = k.parse_cnn("cnn:" + sys.argv[3])
m = k.make_cnn(layers)
sd = {n: torch.from_numpy(np.load(f"{d}/{n}.npy")) for n in json.load(open(f"{d}/names.json"))}
for n in m.state_dict():
    if n.endswith("num_batches_tracked"):
        sd[n] = torch.tensor(0)
m.load_state_dict(sd, strict=True)
x = torch.from_numpy(np.load(f"{d}/x.npy"))
with torch.no_grad():
    m.eval(); np.save(f"{d}/y_eval.npy", m(x).numpy())
    m.train(); np.save(f"{d}/y_train.npy", m(x).numpy())
`
			cmd := exec.Command(sharedtest.Python, "-c", script, peers, dir, arch)
			cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("torch: %v\n%s", err, out)
			}
			y := Mat{Rows: batch, Cols: 10, Data: make([]float32, batch*10)}
			for _, mode := range []string{"eval", "train"} {
				n.SetTraining(mode == "train", nil)
				n.Forward(y, x)
				want := readNPYFloat32(t, filepath.Join(dir, "y_"+mode+".npy"))
				worst := 0.0
				for i, v := range want {
					worst = math.Max(worst, math.Abs(float64(y.Data[i]-v))/math.Max(1, math.Abs(float64(v))))
				}
				if worst > 1e-4 {
					t.Errorf("%s mode: Go and torch differ by up to %.2g (relative)", mode, worst)
				}
				t.Logf("%s mode: max relative difference %.2g", mode, worst)
			}
		})
	}
}

// TestCNNCheckpointInPyTorch trains a CNN student with BatchNorm for an
// epoch and loads its model.safetensors, as written, into the PyTorch
// peer's module of the same spec with load_state_dict(strict=True): every
// parameter and buffer (running_mean, running_var, num_batches_tracked)
// is there under torch's name and shape. The torch module in eval mode
// on the standardized input gives the Go student's eval logits.
func TestCNNCheckpointInPyTorch(t *testing.T) {
	sharedtest.RequirePyTorch(t)
	peers := sharedtest.Dir(t, "peers")
	tmp := t.TempDir()
	// The peer's students take [1,28,28] and end in 10 logits.
	data := smallCache(t, filepath.Join(tmp, "train"), func(s *synth) {
		s.Rows, s.RowsPerPart, s.Inputs, s.Classes, s.Shape = 200, 200, 784, 10, []int64{1, 28, 28}
	})
	const arch = "conv3x3:4,bn,relu,maxpool2,dwconv3x3,bn,relu6,conv1x1:6,flatten,fc:10"
	out := filepath.Join(tmp, "student.ckpt")
	res, err := Train(context.Background(), Config{Type: "cnn", Arch: arch}, data, &Options{Epochs: 1, BatchSize: 50, Threads: 1, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Student
	s.SetTraining(false, nil)
	rng := rand.New(rand.NewPCG(3, 3))
	const batch = 6
	x := randMat(rng, batch, 784, 2)
	xs := Mat{Rows: batch, Cols: 784, Data: make([]float32, batch*784)}
	s.Standardize.Forward(xs, x)
	y := s.Forward(x)
	writeShapedNPY(t, filepath.Join(tmp, "x.npy"), []int{batch, 1, 28, 28}, xs.Data)
	script := `
import json, struct, sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import torch_kd_train as k
raw = open(sys.argv[2] + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
sd = {}
for name, e in head.items():
    if name == "__metadata__" or name.startswith("input_"):
        continue
    a, b = e["data_offsets"]
    sd[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(e["shape"]).copy())
_, layers = k.parse_cnn("cnn:" + sys.argv[3])
m = k.make_cnn(layers)
m.load_state_dict(sd, strict=True)
print("tracked", int(m[1].num_batches_tracked))
m.eval()
with torch.no_grad():
    np.save(sys.argv[2] + "/y.npy", m(torch.from_numpy(np.load(sys.argv[2] + "/x.npy"))).numpy())
`
	// model.safetensors is in out; x.npy in tmp: give python one dir.
	if err := os.Rename(filepath.Join(tmp, "x.npy"), filepath.Join(out, "x.npy")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sharedtest.Python, "-c", script, peers, out, arch)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("torch: %v\n%s", err, got)
	}
	if want := fmt.Sprintf("tracked %d", res.Info.Step); !strings.Contains(string(got), want) {
		t.Errorf("torch says %q, want %q", got, want)
	}
	want := readNPYFloat32(t, filepath.Join(out, "y.npy"))
	worst := 0.0
	for i, v := range want {
		worst = math.Max(worst, math.Abs(float64(y.Data[i]-v))/math.Max(1, math.Abs(float64(v))))
	}
	if worst > 1e-4 {
		t.Errorf("Go and torch eval logits differ by up to %.2g (relative)", worst)
	}
	t.Logf("max relative difference %.2g", worst)
}
