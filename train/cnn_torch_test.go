package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
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
