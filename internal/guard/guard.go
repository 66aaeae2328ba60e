package guard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// Kind is what an output is, or what an existing directory holds.
type Kind int

const (
	// None is a path that does not exist, a plain file or a directory that
	// is no artefact.
	None Kind = iota
	// Cache is a teacher-output cache directory (distill extract).
	Cache
	// Checkpoint is a student checkpoint directory (distill train).
	Checkpoint
	// File is an output file (an .onnx, a .json, a .npy, a report page).
	File
	// Dir is an output directory that is no artefact (a report).
	Dir
)

func (k Kind) String() string {
	switch k {
	case Cache:
		return "a cache"
	case Checkpoint:
		return "a student checkpoint"
	case File:
		return "a file"
	case Dir:
		return "a directory"
	}
	return "nothing"
}

// The files that mark an artefact directory. They are the names of
// formats.ManifestName and train.ConfigFile / train.ModelFile, repeated
// here so that guard depends on nothing; a test checks they agree.
const (
	manifestName = "manifest.json"
	configName   = "config.json"
	modelName    = "model.safetensors"
)

var shardDir = regexp.MustCompile(`^shard-[0-9]{5}-of-[0-9]{5}$`)

// KindOf returns Cache or Checkpoint for a directory that is one, else
// None (also for a path that does not exist or is a file).
func KindOf(path string) Kind {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return None
	}
	if isFile(filepath.Join(path, manifestName)) || hasJournal(path) {
		return Cache
	}
	if isFile(filepath.Join(path, configName)) && isFile(filepath.Join(path, modelName)) {
		return Checkpoint
	}
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if e.IsDir() && shardDir.MatchString(e.Name()) && (isFile(filepath.Join(path, e.Name(), manifestName)) || hasJournal(filepath.Join(path, e.Name()))) {
			return Cache
		}
	}
	return None
}

// journal matches the journal of an extraction attempt that has not
// committed (formats.CacheWriter): such a directory is a cache too.
var journal = regexp.MustCompile(`^_attempt-[0-9a-f]{12}\.json$`)

func hasJournal(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if journal.MatchString(e.Name()) {
			return true
		}
	}
	return false
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Path is an input or an output of a command: the flag that named it (for
// messages), the path, and for an output its Kind.
type Path struct {
	Flag string
	Path string
	Kind Kind
}

// remote reports whether p is an object-storage location (s3://, gs://:
// any scheme but file://), which Check compares as text.
func remote(p string) bool {
	i := strings.Index(p, "://")
	return i > 0 && !strings.ContainsAny(p[:i], `/\.`) && !strings.EqualFold(p[:i], "file")
}

// resolve returns the absolute form of p with symlinks followed along the
// longest prefix that exists, the rest appended as written (cleaned). A
// file:// URL is its path; a remote location is returned cleaned, with
// "/" as its separator.
func resolve(p string) (string, error) {
	if remote(p) {
		scheme, rest, _ := strings.Cut(p, "://")
		return strings.ToLower(scheme) + "://" + strings.Trim(path.Clean("/"+rest), "/"), nil
	}
	if i := strings.Index(p, "://"); i > 0 && strings.EqualFold(p[:i], "file") {
		p = p[i+3:]
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether p is dir or lies below it.
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	sep := string(filepath.Separator)
	if remote(dir) {
		sep = "/"
	}
	return strings.HasPrefix(p, strings.TrimSuffix(dir, sep)+sep)
}

// Check refuses outputs that would touch the inputs: an output that is an
// input, lies inside an input directory or contains an input, and an
// output that is, or lies inside, a cache or checkpoint of another kind
// than its own (a cache output may be an existing cache, to resume it; a
// checkpoint output an existing checkpoint). Empty paths are skipped.
// Object-storage locations (s3://, gs://) are compared as text: an output
// equal to, inside or containing an input is refused; their contents are
// not inspected.
// The error names both flags and paths and says what to do.
func Check(inputs, outputs []Path) error {
	type resolved struct {
		p   Path
		abs string
	}
	var ins []resolved
	for _, in := range inputs {
		if in.Path == "" {
			continue
		}
		a, err := resolve(in.Path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", in.Flag, in.Path, err)
		}
		ins = append(ins, resolved{in, a})
	}
	for _, out := range outputs {
		if out.Path == "" {
			continue
		}
		o, err := resolve(out.Path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", out.Flag, out.Path, err)
		}
		for _, in := range ins {
			switch {
			case o == in.abs:
				return fmt.Errorf("%s %s is also the input %s: writing it would destroy the input; choose another %s", out.Flag, out.Path, in.p.Flag, out.Flag)
			case within(o, in.abs):
				return fmt.Errorf("%s %s is inside the input %s %s; choose a path outside it", out.Flag, out.Path, in.p.Flag, in.p.Path)
			case within(in.abs, o):
				return fmt.Errorf("%s %s contains the input %s %s; choose a path that does not", out.Flag, out.Path, in.p.Flag, in.p.Path)
			}
		}
		if remote(o) {
			// What a bucket holds is judged by the command that writes it.
			continue
		}
		// The output itself, when it exists, must be of its own kind.
		if k := KindOf(o); k != None && k != out.Kind {
			return fmt.Errorf("%s %s is %s, not %s: it would be overwritten; choose another %s", out.Flag, out.Path, k, out.Kind, out.Flag)
		}
		if out.Kind == Cache || out.Kind == Checkpoint {
			if st, err := os.Stat(o); err == nil && !st.IsDir() {
				return fmt.Errorf("%s %s is a file; %s is written as a directory", out.Flag, out.Path, out.Kind)
			}
		}
		// No ancestor may be an artefact: a file inside a cache or a
		// checkpoint would corrupt it (a cache's shard directories sit in
		// a parent that is itself a cache, which a cache output may be).
		for dir := filepath.Dir(o); ; dir = filepath.Dir(dir) {
			if k := KindOf(dir); k != None && !(k == Cache && out.Kind == Cache) {
				return fmt.Errorf("%s %s is inside %s (%s); choose a path outside it", out.Flag, out.Path, k, dir)
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return nil
}
