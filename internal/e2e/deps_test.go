package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/distill-ml/distill"

// forbidden is the project's dependency policy (see ../shared/STYLE.md §1):
// for each package (prefix), the import paths (prefixes) it must never
// depend on, directly or indirectly. Like go/build's deps_test.go, it is a
// statement of policy: change it deliberately, not to make a build pass.
var forbidden = map[string][]string{
	module + "/formats": {module + "/extract", module + "/train", module + "/export", module + "/cmd",
		"github.com/yalue/onnxruntime_go", "gonum.org/v1/gonum", "github.com/spf13/pflag"},
	module + "/extract": {module + "/train", module + "/export", module + "/cmd", "github.com/spf13/pflag"},
	module + "/train": {"github.com/yalue/onnxruntime_go", module + "/extract",
		module + "/export", module + "/cmd", "github.com/spf13/pflag"},
	module + "/export":          {"github.com/yalue/onnxruntime_go", module + "/extract", module + "/cmd", "github.com/spf13/pflag"},
	module + "/internal/onnxpb": {module + "/"},
}

// forbiddenDirect lists imports a package must not make itself, though it
// may reach them through an allowed package: train reads caches through
// formats (which holds all Arrow memory) but never touches Arrow itself.
var forbiddenDirect = map[string][]string{
	module + "/train":  {"github.com/apache/arrow-go"},
	module + "/export": {"github.com/apache/arrow-go"},
}

func TestImportPolicy(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Deps,Imports", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		for pkg, bans := range forbiddenDirect {
			if p.ImportPath != pkg && !strings.HasPrefix(p.ImportPath, pkg+"/") {
				continue
			}
			for _, d := range p.Imports {
				for _, ban := range bans {
					if d == ban || strings.HasPrefix(d, ban+"/") {
						t.Errorf("%s imports %s directly (forbidden: %s)", p.ImportPath, d, ban)
					}
				}
			}
		}
		for pkg, bans := range forbidden {
			if p.ImportPath != pkg && !strings.HasPrefix(p.ImportPath, pkg+"/") {
				continue
			}
			checked++
			for _, d := range p.Deps {
				for _, ban := range bans {
					if d == ban || strings.HasPrefix(d, strings.TrimSuffix(ban, "/")+"/") {
						t.Errorf("%s depends on %s (forbidden: %s)", p.ImportPath, d, ban)
					}
				}
			}
		}
	}
	if checked < 2 {
		t.Fatalf("only %d policed packages found; is the module path %s right?", checked, module)
	}
}
