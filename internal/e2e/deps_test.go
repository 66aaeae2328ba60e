package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/distill-ml/distill"

// forbidden is the project's dependency policy (see ../shared/STYLE.md §1):
// for each package, the import paths (prefixes) it must never depend on,
// directly or indirectly. A key "P/..." covers P and the packages below
// it; a key "P" covers P alone. Like go/build's deps_test.go, it is a
// statement of policy: change it deliberately, not to make a build pass.
var forbidden = map[string][]string{
	module + "/formats/...": {module + "/extract", module + "/train", module + "/export", module + "/eval", module + "/report",
		"github.com/yalue/onnxruntime_go", "gonum.org/v1/gonum", "github.com/spf13/pflag"},
	module + "/extract/...": {module + "/train", module + "/export", module + "/eval", module + "/report", "github.com/spf13/pflag"},
	module + "/train/...": {"github.com/yalue/onnxruntime_go", module + "/extract",
		module + "/export", module + "/eval", module + "/report", "github.com/spf13/pflag"},
	module + "/export/...": {"github.com/yalue/onnxruntime_go", module + "/extract", module + "/eval", module + "/report", "github.com/spf13/pflag"},
	// eval's core (metrics, the result schema, checkpoints as scorers) has
	// no onnxruntime in it: that is eval/onnxmodel, the one part that
	// imports extract.
	module + "/eval":           {module + "/extract", module + "/export", module + "/report", "github.com/yalue/onnxruntime_go", "github.com/spf13/pflag"},
	module + "/eval/onnxmodel": {module + "/report", "github.com/spf13/pflag"},
	// report reads eval's JSON and train's checkpoints; it never runs a
	// model.
	module + "/report/...": {module + "/extract", module + "/export", module + "/eval/onnxmodel",
		"github.com/yalue/onnxruntime_go", "github.com/spf13/pflag"},
	// lm runs language models one call at a time; its core (the contract,
	// checkpoints through the Go forward, sampling) has no onnxruntime in
	// it: that is lm/onnxlm, which runs ONNX files through extract.
	module + "/lm":              {module + "/extract", module + "/export", module + "/eval", module + "/report", "github.com/yalue/onnxruntime_go", "github.com/spf13/pflag"},
	module + "/lm/onnxlm":       {module + "/export", module + "/eval", module + "/report", "github.com/spf13/pflag"},
	module + "/internal/onnxpb": {module + "/"},
}

// neverImported lists what no package of the module may depend on: the
// command, and the test-only packages (fixtures, e2e, sharedtest, s3test).
var neverImported = []string{module + "/cmd", module + "/fixtures", module + "/internal/e2e", module + "/internal/sharedtest", module + "/internal/s3test"}

// forbiddenDirect lists imports a package must not make itself, though it
// may reach them through an allowed package: train reads caches through
// formats (which holds all Arrow memory) but never touches Arrow itself.
//
// Only internal/store talks to object storage: everything else reads and
// writes locations through it, never gocloud.dev or a cloud SDK itself.
var forbiddenDirect = map[string][]string{
	module + "/train/...":   {"github.com/apache/arrow-go", "gocloud.dev", "github.com/aws", "cloud.google.com"},
	module + "/export/...":  {"github.com/apache/arrow-go", "gocloud.dev", "github.com/aws", "cloud.google.com"},
	module + "/formats/...": {"gocloud.dev", "github.com/aws", "cloud.google.com"},
	module + "/extract/...": {"gocloud.dev", "github.com/aws", "cloud.google.com"},
	module + "/eval/...":    {"gocloud.dev", "github.com/aws", "cloud.google.com"},
	module + "/lm/...":      {"gocloud.dev", "github.com/aws", "cloud.google.com"},
	module + "/report/...":  {"gocloud.dev", "github.com/aws", "cloud.google.com"},
	module + "/cmd/...":     {"gocloud.dev", "github.com/aws", "cloud.google.com"},
}

// stdOnly packages depend on the standard library alone.
var stdOnly = []string{module + "/internal/atomicfile", module + "/internal/human", module + "/internal/lock", module + "/internal/guard", module + "/internal/sharedtest"}

// noCgo packages link no cgo outside the standard library (the standard
// library's own, such as net's resolver, is a build setting).
var noCgo = []string{module + "/eval", module + "/lm", module + "/report/...", module + "/train/...", module + "/formats/...", module + "/export/..."}

// covers reports whether the policy key covers package path.
func covers(key, path string) bool {
	if k, ok := strings.CutSuffix(key, "/..."); ok {
		return path == k || strings.HasPrefix(path, k+"/")
	}
	return path == key
}

// under reports whether path is ban or below it.
func under(path, ban string) bool {
	return path == ban || strings.HasPrefix(path, strings.TrimSuffix(ban, "/")+"/")
}

type goPackage struct {
	ImportPath string
	Standard   bool
	CgoFiles   []string
	Deps       []string
	Imports    []string
}

func TestImportPolicy(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Standard,CgoFiles,Deps,Imports", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	pkgs := map[string]*goPackage{}
	var ours []*goPackage
	for dec.More() {
		p := new(goPackage)
		if err := dec.Decode(p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
		if under(p.ImportPath, module) {
			ours = append(ours, p)
		}
	}
	checked := map[string]bool{}
	for _, p := range ours {
		for key, bans := range forbiddenDirect {
			if !covers(key, p.ImportPath) {
				continue
			}
			for _, d := range p.Imports {
				for _, ban := range bans {
					if under(d, ban) {
						t.Errorf("%s imports %s directly (forbidden: %s)", p.ImportPath, d, ban)
					}
				}
			}
		}
		for key, bans := range forbidden {
			if !covers(key, p.ImportPath) {
				continue
			}
			checked[key] = true
			for _, d := range p.Deps {
				for _, ban := range bans {
					if under(d, ban) {
						t.Errorf("%s depends on %s (forbidden: %s)", p.ImportPath, d, ban)
					}
				}
			}
		}
		for _, ban := range neverImported {
			if under(p.ImportPath, ban) {
				continue
			}
			for _, d := range p.Deps {
				if under(d, ban) {
					t.Errorf("%s depends on %s: nothing may import %s", p.ImportPath, d, ban)
				}
			}
		}
		for _, key := range stdOnly {
			if !covers(key, p.ImportPath) {
				continue
			}
			checked[key] = true
			for _, d := range p.Deps {
				if dp := pkgs[d]; dp == nil || !dp.Standard {
					t.Errorf("%s depends on %s: it may use the standard library only", p.ImportPath, d)
				}
			}
		}
		for _, key := range noCgo {
			if !covers(key, p.ImportPath) {
				continue
			}
			checked[key] = true
			for _, d := range append([]string{p.ImportPath}, p.Deps...) {
				if dp := pkgs[d]; dp != nil && !dp.Standard && len(dp.CgoFiles) > 0 {
					t.Errorf("%s depends on %s, which uses cgo (%s)", p.ImportPath, d, strings.Join(dp.CgoFiles, ", "))
				}
			}
		}
	}
	for key := range forbidden {
		if !checked[key] {
			t.Errorf("policy for %s matched no package; is the module path %s right?", key, module)
		}
	}
	for _, key := range append(stdOnly, noCgo...) {
		if !checked[key] {
			t.Errorf("policy for %s matched no package", key)
		}
	}
}
