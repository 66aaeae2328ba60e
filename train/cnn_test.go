package train

import (
	"strings"
	"testing"
)

// TestCNNPresets: the peer's presets build networks with the parameter
// counts its README gives (torch's numel over parameters, buffers not
// counted), and the names of nn.Sequential (no bias on a conv before bn).
func TestCNNPresets(t *testing.T) {
	for name, want := range map[string]int{"lenet5": 61706, "tiny": 8834, "dws": 38314} {
		n, err := NewCNN("cnn:"+name, 1, 28, 28, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, p := range n.Params() {
			got += p.Size()
		}
		if got != want {
			t.Errorf("%s: %d parameters, the peer's has %d", name, got, want)
		}
	}
	n, err := NewCNN("tiny", 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range n.Params() {
		names = append(names, p.Name)
	}
	want := "0.weight 1.weight 1.bias 4.weight 5.weight 5.bias 8.weight 9.weight 9.bias 13.weight 13.bias"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("tiny's parameters %q, want %q", got, want)
	}
}

// TestCNNErrors: the peer's shape checks, one line naming the layer.
func TestCNNErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"conv3x3:8,relu,fc:10": "layer 2 'fc:10': fc needs flat features",
		"conv3x3:8,maxpool2,maxpool2,maxpool2,maxpool2,maxpool2,gap,fc:10": "layer 5 'maxpool2': pooling needs [C,H,W] maps of at least 2x2",
		"conv3x2:8,gap,fc:10":               "the kernel must be square",
		"conv3x3,gap,fc:10":                 "expected convKxK:C",
		"conv3x3:8:q1,gap,fc:10":            "unknown option 'q1'",
		"swish,gap,fc:10":                   "unknown layer",
		"conv3x3:8,gap,fc:12":               "must give 10 logits",
		"conv3x3:8,gap,conv3x3:4":           "a convolution needs [C,H,W] maps",
		"conv3x3:8,,gap,fc:10":              "empty layer",
		"conv3x3:8,gap,fc:16,bn,relu,fc:10": "not supported by distill yet",
	} {
		_, err := NewCNN(spec, 1, 28, 28, 10)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", spec, err, want)
		}
	}
}
