package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distill-ml/distill/internal/atomicfile"
	"github.com/distill-ml/distill/internal/lock"
	"github.com/distill-ml/distill/internal/store"
)

// A checkpoint is a directory:
//
//	student.ckpt/
//	  model.safetensors   input_mean, input_std [Inputs]; fc1.weight [H1, Inputs], fc1.bias [H1],
//	                      ln1.weight, ln1.bias [H1] (--layernorm), ..., fcL.weight [Classes, H], fcL.bias
//	                      (PyTorch names and layout; __metadata__ {"format": "pt"})
//	  config.json         CheckpointInfo: architecture, training options, epoch, step,
//	                      cache digest and teacher sha256, per-epoch metrics
//	  metrics.jsonl       one EpochMetrics per completed epoch
//	  state.safetensors   what --resume needs besides the weights: optimizer state
//	                      (exp_avg.NAME, exp_avg_sq.NAME or momentum_buffer.NAME) and the
//	                      feature-distillation projections (feature.J.weight, feature.J.bias)
//	                      with theirs; __metadata__ {"epoch", "step", "optimizer"}
//
// Nothing in it depends on the clock, so a run with the same seed, data,
// options and thread count writes the same bytes. config.json records the
// size and sha256 of the three other files (CheckpointInfo.Files), and Load
// checks them.
//
// WriteCheckpoint replaces the directory atomically: it writes every file
// into .NAME.tmp beside it (each synced), renames NAME to .NAME.old,
// renames .NAME.tmp to NAME, and removes .NAME.old. A crash leaves either
// NAME complete, or only .NAME.old (the previous checkpoint, complete);
// Load reads .NAME.old when NAME is missing, and the next WriteCheckpoint
// restores it first. A WriteCheckpoint that fails (a full disk) removes
// .NAME.tmp and puts the previous NAME back if it had moved it.
//
// At a remote location (s3://, gs://; package internal/store) no rename
// exists: each save goes to a prefix of its own and the pointer object
// checkpoint.json, written last, names the current one (see PointerFile).
// WriteCheckpoint, Load, Exists, LoadLMCheckpoint and Train's Out and
// Resume take either kind of location.
//
// One writer at a time: Train holds a lock on the empty file .NAME.lock
// beside the checkpoint for its whole run (package internal/lock: flock,
// dropped by the kernel when the process dies), so a second Train into the
// same Out fails at once with an error wrapping ErrLocked. The lock is on a
// file of its own because NAME is replaced by rename at every epoch, and
// the parent directory may hold other checkpoints. Train removes
// .NAME.lock when it returns; after a kill it stays, empty and unlocked,
// until the next Train into NAME takes it over and removes it.
const (
	ModelFile   = "model.safetensors"
	ConfigFile  = "config.json"
	MetricsFile = "metrics.jsonl"
	StateFile   = "state.safetensors"

	checkpointFormat  = "distill-student"
	checkpointVersion = 1
	maxConfigBytes    = 64 << 20
)

// Provenance identifies the cache a student was trained or evaluated on.
type Provenance struct {
	Path          string `json:"path,omitempty"`           // the cache directory (its first shard's), absolute; distill export finds the tokenizer through it
	Digest        string `json:"digest"`                   // formats.Cache.Digest
	TeacherSHA256 string `json:"teacher_sha256,omitempty"` // formats.Manifest.Teacher.SHA256
	ScoreKind     string `json:"score_kind,omitempty"`
	Rows          int64  `json:"rows"`
	Classes       int    `json:"classes"`
	TopK          int    `json:"top_k"`
	// Dataset is the cache's source dataset file (formats.Dataset.Path),
	// where a token dataset records its tokenizer.
	Dataset string `json:"dataset,omitempty"`
	// Ensemble lists the teachers of an Ensemble (TeacherSHA256 then
	// holds their sha256s, comma-separated; the other fields describe
	// the first cache, the Ensemble's digest and rows).
	Ensemble *EnsembleProvenance `json:"ensemble,omitempty"`
}

// CheckpointInfo is config.json.
type CheckpointInfo struct {
	Format   string         `json:"format"`  // "distill-student"
	Version  int            `json:"version"` // 1
	Student  Config         `json:"student"`
	Input    string         `json:"input"` // the cache input column the student takes (without "input.")
	Training Options        `json:"training"`
	Epoch    int            `json:"epoch"` // epochs completed
	Step     int64          `json:"step"`  // optimizer steps taken
	Cache    Provenance     `json:"cache"`
	Val      *Provenance    `json:"val,omitempty"`
	Metrics  []EpochMetrics `json:"metrics"`
	// Files holds the size and sha256 of every other file of the
	// checkpoint (ModelFile, MetricsFile and StateFile if written), by
	// name. WriteCheckpoint sets it, whatever it held; LoadFS checks every
	// listed file that is present. Checkpoints written before it existed
	// have none and load unchecked.
	Files map[string]FileDigest `json:"files,omitempty"`
}

// FileDigest is the size and hex sha256 of a checkpoint file.
type FileDigest struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func fileDigest(data []byte) FileDigest {
	sum := sha256.Sum256(data)
	return FileDigest{Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

// ErrLocked reports a checkpoint directory that another Train (in this
// process or another) is writing. It is lock.ErrLocked (package
// internal/lock), so errors.Is matches either.
var ErrLocked = lock.ErrLocked

// Checkpoint is a loaded or to-be-written checkpoint directory.
type Checkpoint struct {
	Info    CheckpointInfo
	Student *Student
	// State holds state.safetensors (nil if the file is absent): optimizer
	// moments and feature projections, for resuming.
	State     []*Param
	StateMeta map[string]string
}

// WriteCheckpoint writes c to the directory dir atomically (see the layout
// above), with c.Info.Files set to the files it writes. It refuses to
// replace a dir that exists and is neither empty nor a checkpoint. On
// error it leaves no .NAME.tmp and dir as it was. It takes no lock: Train
// holds one for its whole run.
func WriteCheckpoint(dir string, c *Checkpoint) error {
	info := c.Info
	info.Format, info.Version = checkpointFormat, checkpointVersion
	var model, state, metrics bytes.Buffer
	if err := WriteSafetensors(&model, c.Student.Tensors(), map[string]string{"format": "pt"}); err != nil {
		return err
	}
	for _, m := range info.Metrics {
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("train: checkpoint: %w", err)
		}
		metrics.Write(b)
		metrics.WriteByte('\n')
	}
	files := []dirFile{{ModelFile, model.Bytes()}, {MetricsFile, metrics.Bytes()}}
	if c.State != nil {
		if err := WriteSafetensors(&state, c.State, c.StateMeta); err != nil {
			return err
		}
		files = append(files, dirFile{StateFile, state.Bytes()})
	}
	info.Files = digests(files)
	cfg, err := jsonFile(ConfigFile, &info)
	if err != nil {
		return err
	}
	if store.IsRemote(dir) {
		return writeRemote(context.Background(), dir, append(files, cfg), info.Epoch)
	}
	return writeDir(dir, append(files, cfg))
}

// dirFile is one file of a checkpoint directory.
type dirFile struct {
	name string
	data []byte
}

// digests returns the size and sha256 of each file, by name.
func digests(files []dirFile) map[string]FileDigest {
	m := make(map[string]FileDigest, len(files))
	for _, f := range files {
		m[f.name] = fileDigest(f.data)
	}
	return m
}

// jsonFile returns the file name holding v as indented JSON.
func jsonFile(name string, v any) (dirFile, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return dirFile{}, fmt.Errorf("train: checkpoint: %w", err)
	}
	return dirFile{name, append(b, '\n')}, nil
}

// writeDir replaces the directory dir atomically by one holding files
// (see the layout above): staged in .NAME.tmp, each file synced, then
// swapped in by renames. On error it leaves no .NAME.tmp and dir as it
// was.
func writeDir(dir string, files []dirFile) (err error) {
	dir = filepath.Clean(dir)
	tmp, old := siblings(dir)
	if err := recoverDir(dir); err != nil {
		return err
	}
	// Leftovers of an interrupted write: a partial .tmp, or a .old whose
	// removal was cut short (dir is complete then).
	for _, p := range []string{tmp, old} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("train: checkpoint: %w", err)
		}
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp) // best effort: the error at hand says more
		}
	}()
	for _, f := range files {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	// atomicfile.Rename syncs the parent after each rename, so a crash
	// leaves the previous checkpoint (as NAME or .NAME.old) or the new one
	// complete on disk, plus leftovers the next WriteCheckpoint removes.
	// A failed rename (or its sync) may or may not have happened: if NAME
	// is missing afterwards, .NAME.old goes back.
	putBack := func() {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			os.Rename(old, dir)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		if err := atomicfile.Rename(dir, old); err != nil {
			putBack()
			return fmt.Errorf("train: checkpoint: %w", err)
		}
	}
	if err := checkpointFault("rename"); err != nil {
		putBack()
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := atomicfile.Rename(tmp, dir); err != nil {
		putBack()
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

// checkpointFault injects failures into WriteCheckpoint for tests: it is
// called with each file's name before the file is written and with
// "rename" between the two renames, and its error fails the write there.
var checkpointFault = func(step string) error { return nil }

// siblings returns the temporary and previous-checkpoint paths of dir.
func siblings(dir string) (tmp, old string) {
	parent, base := filepath.Split(dir)
	return filepath.Join(parent, "."+base+".tmp"), filepath.Join(parent, "."+base+".old")
}

// lockCheckpoint takes the lock of a run writing the checkpoint dir: the
// file .NAME.lock beside it (see the layout above), creating dir's parent
// directories if needed. release unlocks, removes the lock file and the
// parent directories it created if they are empty (nothing was written).
func lockCheckpoint(dir string) (release func() error, err error) {
	dir = filepath.Clean(dir)
	parent, base := filepath.Split(dir)
	made, err := atomicfile.MkdirAll(filepath.Dir(dir))
	if err != nil {
		return nil, fmt.Errorf("train: checkpoint: %w", err)
	}
	unlock, err := lock.File(filepath.Join(parent, "."+base+".lock"))
	if errors.Is(err, lock.ErrLocked) {
		return nil, fmt.Errorf("train: %s: another distill process is training into it; wait for it to finish, or choose another --out (%w)", dir, ErrLocked)
	}
	if err != nil {
		atomicfile.RemoveEmptyDirs(made)
		return nil, fmt.Errorf("train: lock checkpoint: %w", err)
	}
	return func() error {
		err := unlock()
		atomicfile.RemoveEmptyDirs(made)
		return err
	}, nil
}

// recoverDir finishes an interrupted WriteCheckpoint: if dir is missing
// and .dir.old exists, it is renamed back. It fails if dir exists and is
// neither empty nor a checkpoint, so that WriteCheckpoint never replaces
// unrelated files.
func recoverDir(dir string) error {
	_, old := siblings(dir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(old); err == nil {
			if err := atomicfile.Rename(old, dir); err != nil {
				return fmt.Errorf("train: checkpoint: restore %s: %w", old, err)
			}
		}
		return nil
	}
	return replaceable(dir)
}

// replaceable fails if dir exists and is neither empty nor a checkpoint.
func replaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil {
		return fmt.Errorf("train: checkpoint: %s exists and is not a checkpoint (no %s); choose another --out", dir, ConfigFile)
	}
	return nil
}

// Exists reports whether dir (or its .old sibling left by a crash) holds a
// checkpoint.
func Exists(dir string) bool {
	if store.IsRemote(dir) {
		ok, _ := remoteExists(context.Background(), dir)
		return ok
	}
	dir = filepath.Clean(dir)
	_, old := siblings(dir)
	for _, d := range []string{dir, old} {
		if _, err := os.Stat(filepath.Join(d, ConfigFile)); err == nil {
			return true
		}
	}
	return false
}

// writeSynced writes and fsyncs a file of the staging directory .NAME.tmp.
// It need not appear atomically (atomicfile): nothing reads .NAME.tmp, and
// the directory swap publishes all files at once.
func writeSynced(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := checkpointFault(filepath.Base(path)); err != nil {
		f.Close()
		return fmt.Errorf("train: checkpoint: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

// Load reads the checkpoint directory dir, or dir's previous version if a
// crash interrupted its replacement (see WriteCheckpoint). It does not
// modify anything.
func Load(dir string) (*Checkpoint, error) {
	if store.IsRemote(dir) {
		return loadRemote(dir, LoadFS)
	}
	dir = filepath.Clean(dir)
	_, old := siblings(dir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(old, ConfigFile)); err == nil {
			dir = old
		}
	}
	c, err := LoadFS(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return c, nil
}

// LoadFS reads a checkpoint from the root of fsys. Corrupt or inconsistent
// files yield an error wrapping ErrCheckpoint (a missing file wraps
// fs.ErrNotExist); nothing is allocated beyond the sizes of the files.
// Every file config.json lists in Files that is present must have the
// recorded size and sha256, and a present StateFile or MetricsFile must be
// listed (checkpoints without Files are not checked); a weight that is NaN
// or ±Inf is refused, naming its tensor, so that no export, evaluation or
// resume uses it.
func LoadFS(fsys fs.FS) (*Checkpoint, error) {
	cfgData, err := readLimited(fsys, ConfigFile, maxConfigBytes)
	if err != nil {
		return nil, err
	}
	var info CheckpointInfo
	if err := json.Unmarshal(cfgData, &info); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, ConfigFile, err)
	}
	if info.Format != checkpointFormat {
		return nil, fmt.Errorf("%w: %s: format %q, want %q", ErrCheckpoint, ConfigFile, info.Format, checkpointFormat)
	}
	if info.Version != checkpointVersion {
		return nil, fmt.Errorf("%w: %s: version %d, this build reads %d", ErrCheckpoint, ConfigFile, info.Version, checkpointVersion)
	}
	model, err := readChecked(fsys, ModelFile, info.Files)
	if err != nil {
		return nil, err
	}
	if _, err := readChecked(fsys, MetricsFile, info.Files); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tensors, _, err := ReadSafetensors(model)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ModelFile, err)
	}
	cfg, err := info.Student.normalize()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, ConfigFile, err)
	}
	// The architecture must fit the tensors actually present before a
	// Student is allocated for it.
	if need := 4 * int64(studentValues(cfg)); need > int64(len(model)) {
		return nil, fmt.Errorf("%w: %s describes %d values, %s has %d bytes", ErrCheckpoint, ConfigFile, need/4, ModelFile, len(model))
	}
	s, err := NewStudent(cfg, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	if err := assign(s.Tensors(), byName(tensors), ModelFile, true); err != nil {
		return nil, err
	}
	if err := checkFinite(s.Tensors(), ModelFile); err != nil {
		return nil, err
	}
	if err := s.Standardize.Set(s.Standardize.Mean.Data, s.Standardize.Std.Data); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, ModelFile, err)
	}
	c := &Checkpoint{Info: info, Student: s}
	if data, err := readChecked(fsys, StateFile, info.Files); err == nil {
		st, meta, err := ReadSafetensors(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", StateFile, err)
		}
		c.State = st
		c.StateMeta = meta
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return c, nil
}

// readChecked reads the checkpoint file name and, if files is not nil
// (config.json records digests), checks it against its entry there: no
// more than the recorded size is read. A missing file wraps
// fs.ErrNotExist, a mismatch ErrCheckpoint.
func readChecked(fsys fs.FS, name string, files map[string]FileDigest) ([]byte, error) {
	if files == nil {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("train: checkpoint: %w", err)
		}
		return data, nil
	}
	const fix = "the checkpoint is corrupt; re-train or restore it"
	want, ok := files[name]
	if !ok {
		if _, err := fs.Stat(fsys, name); err != nil {
			return nil, fmt.Errorf("train: checkpoint: %w", err)
		}
		return nil, fmt.Errorf("%w: %s is not recorded in %s: %s", ErrCheckpoint, name, ConfigFile, fix)
	}
	if want.Bytes < 0 {
		return nil, fmt.Errorf("%w: %s records %d bytes for %s", ErrCheckpoint, ConfigFile, want.Bytes, name)
	}
	data, err := readLimited(fsys, name, want.Bytes)
	if errors.Is(err, ErrCheckpoint) || err == nil && int64(len(data)) != want.Bytes {
		return nil, fmt.Errorf("%w: %s: size differs from the %d bytes %s records: %s", ErrCheckpoint, name, want.Bytes, ConfigFile, fix)
	}
	if err != nil {
		return nil, err
	}
	if fileDigest(data).SHA256 != want.SHA256 {
		return nil, fmt.Errorf("%w: %s: sha256 mismatch: %s", ErrCheckpoint, name, fix)
	}
	return data, nil
}

// checkFinite refuses tensors holding NaN or ±Inf, naming the first.
func checkFinite(ps []*Param, file string) error {
	for _, p := range ps {
		for i, v := range p.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w: %s: tensor %s holds %v at index %d: the weights are not usable; re-train or restore the checkpoint",
					ErrCheckpoint, file, p.Name, v, i)
			}
		}
	}
	return nil
}

// studentValues is the number of values model.safetensors holds for cfg.
func studentValues(cfg Config) int {
	if cfg.Type == "cnn" {
		return cnnValues(cfg)
	}
	n, prev := 2*cfg.Inputs, cfg.Inputs
	for _, h := range cfg.Hidden {
		n += prev*h + h
		if cfg.LayerNorm {
			n += 2 * h
		}
		prev = h
	}
	return n + prev*cfg.Classes + cfg.Classes
}

func readLimited(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("train: checkpoint: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("train: checkpoint: %s: %w", name, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %s larger than %d bytes", ErrCheckpoint, name, limit)
	}
	return buf.Bytes(), nil
}

// byName indexes tensors by name.
func byName(ps []*Param) map[string]*Param {
	m := make(map[string]*Param, len(ps))
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// assign copies the named tensors into dst, checking shapes; with exact,
// tensors not in dst are an error too.
func assign(dst []*Param, src map[string]*Param, file string, exact bool) error {
	var missing, wrong []string
	for _, p := range dst {
		t, ok := src[p.Name]
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		if !slices.Equal(t.Shape, p.Shape) {
			wrong = append(wrong, fmt.Sprintf("%s has shape %v, want %v", p.Name, t.Shape, p.Shape))
			continue
		}
		copy(p.Data, t.Data)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s lacks %s", ErrCheckpoint, file, strings.Join(missing, ", "))
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrCheckpoint, file, strings.Join(wrong, "; "))
	}
	if exact && len(src) != len(dst) {
		var extra []string
		for n := range src {
			if !slices.ContainsFunc(dst, func(p *Param) bool { return p.Name == n }) {
				extra = append(extra, n)
			}
		}
		slices.Sort(extra)
		return fmt.Errorf("%w: %s has tensors the architecture does not: %s", ErrCheckpoint, file, strings.Join(extra, ", "))
	}
	return nil
}
