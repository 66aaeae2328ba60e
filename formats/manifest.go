package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/distill-ml/distill/internal/store"
)

// ManifestName is the file name of the manifest in a cache directory.
const ManifestName = "manifest.json"

// maxManifestBytes bounds the manifest JSON a reader accepts.
const maxManifestBytes = 64 << 20

// ScoreKind says what the stored scores are.
type ScoreKind string

// Score kinds. Whatever the kind, scores are stored without temperature.
const (
	ScoreLogits     ScoreKind = "logits"      // raw pre-softmax teacher scores
	ScoreLogProbs   ScoreKind = "log_probs"   // log of the probabilities the model output
	ScoreLogSoftmax ScoreKind = "log_softmax" // the model output was already log-softmax
)

// Manifest describes a cache directory: how it was made and which part
// files hold its rows. It is stored as manifest.json in the directory, and
// without its Parts (and with Rows 0) under MetaManifest in the schema
// metadata of every part. Fill it in and pass it to CreateCache, which sets
// the fields derived from the Config and WriterOptions.
type Manifest struct {
	Version   string     `json:"version"`      // format version "MAJOR.MINOR"; CreateCache sets Version
	Teacher   Teacher    `json:"teacher"`      // the model that produced the scores
	ScoreKind ScoreKind  `json:"score_kind"`   // what the stored scores are; "" becomes ScoreLogits in CreateCache
	Classes   int        `json:"classes"`      // C; set from Config
	Dataset   Dataset    `json:"dataset"`      // the source of the rows
	Settings  Settings   `json:"settings"`     // how the cache was extracted and stored
	Tool      string     `json:"tool_version"` // version of the tool that wrote the cache
	Created   time.Time  `json:"created"`      // creation time; CreateCache sets it if zero
	Rows      int64      `json:"rows"`         // total rows in Parts
	Parts     []PartInfo `json:"parts,omitempty"`
}

// Teacher identifies the teacher model.
type Teacher struct {
	File            string       `json:"file"`   // base name of the .onnx file
	SHA256          string       `json:"sha256"` // hex sha256 of the file
	Inputs          []TensorInfo `json:"inputs,omitempty"`
	Outputs         []TensorInfo `json:"outputs,omitempty"`
	Opset           int          `json:"opset,omitempty"`
	Producer        string       `json:"producer,omitempty"`         // producer_name of the model
	ProducerVersion string       `json:"producer_version,omitempty"` // producer_version of the model
	ScoreTensor     string       `json:"score_tensor,omitempty"`     // the tensor the scores were read from (e.g. the input of a final Softmax)
	ScoreNote       string       `json:"score_note,omitempty"`       // why that tensor, and how the score kind was decided
}

// TensorInfo is a model input or output as declared by the model.
type TensorInfo struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"` // -1 for a dynamic dimension
	Dtype string  `json:"dtype"` // ONNX element type, e.g. "float32", "int64"
}

// Dataset identifies the source dataset and, since version 1.1, records
// the recipe that turns its rows into the model inputs (Options, Inputs,
// Preprocess), so that the inputs of a cache extracted without them can be
// recomputed from the dataset: for each of Inputs, the values of Column in
// the cache row's dataset row (Batch.Rows), transformed by Preprocess with
// Channels(Shape) channels. Manifests without Inputs (version 1.0) carry no
// recipe.
type Dataset struct {
	Path          string   `json:"path"`                    // absolute path of the data file
	SHA256        string   `json:"sha256,omitempty"`        // hex sha256 of each file read (data, then labels), comma-separated
	Rows          int64    `json:"rows"`                    // rows in the whole dataset (all shards)
	Preprocessing []string `json:"preprocessing,omitempty"` // ordered steps for people (Preprocess.Describe), e.g. "scale 0.5"

	Options    *DatasetOptions `json:"options,omitempty"`    // how the dataset was opened; nil = the defaults
	Inputs     []DatasetInput  `json:"inputs,omitempty"`     // which column fed which model input, in model input order
	Preprocess *Preprocess     `json:"preprocess,omitempty"` // nil = values fed unchanged
}

// DatasetOptions are the dataset reader settings that decide which columns
// a dataset has and what they hold: the fields of the same names in
// package formats/dataset's Options, which this package does not import.
type DatasetOptions struct {
	Format      string   `json:"format,omitempty"`       // forced format; "" = detected
	Label       string   `json:"label,omitempty"`        // label column; "" = "label" if present, "-" = none
	Labels      string   `json:"labels,omitempty"`       // absolute path of a separate labels file (.npy, idx)
	Features    []string `json:"features,omitempty"`     // scalar columns combined into one
	FeatureName string   `json:"feature_name,omitempty"` // name of that combined column
}

// DatasetInput is one model input as fed from the dataset.
type DatasetInput struct {
	Name   string  `json:"name"`   // model input name (the input.<name> column when cached)
	Column string  `json:"column"` // dataset column
	Shape  []int64 `json:"shape"`  // per-sample shape fed, without the batch axis; every dim >= 1
}

// Settings are the extraction and storage settings. Every shard of a cache
// has the same Settings except ShardIndex.
type Settings struct {
	BatchSize         int          `json:"batch_size"`                   // teacher inference batch size
	TopK              int          `json:"top_k"`                        // 0 for full logits; from Config
	Positions         int          `json:"positions,omitempty"`          // T of a per-token cache; from Config
	TopKLogProbs      bool         `json:"topk_log_probs,omitempty"`     // top-k scores stored as log-probabilities; from Config
	Samples           int          `json:"samples,omitempty"`            // S draws per position of a sampled cache; from Config
	SampleTemperature float64      `json:"sample_temperature,omitempty"` // τ of the proposal; from Config
	SampleSeed        uint64       `json:"sample_seed,omitempty"`        // from Config
	Dtype             Dtype        `json:"dtype"`                        // score storage dtype; from Config
	HasLabel          bool         `json:"has_label"`                    // from Config
	Hidden            []TensorSpec `json:"hidden,omitempty"`
	KeepInput         bool         `json:"keep_input"` // len(Inputs) > 0
	Inputs            []TensorSpec `json:"inputs,omitempty"`
	ShardIndex        int          `json:"shard_index"` // i in [0, ShardCount)
	ShardCount        int          `json:"shard_count"` // N >= 1; 0 becomes 1 in CreateCache
	Format            Format       `json:"format"`      // from WriterOptions
	Compression       Compression  `json:"compression"` // from WriterOptions
	RowsPerBatch      int          `json:"rows_per_batch"`
}

// PartInfo describes one part file of a cache directory.
type PartInfo struct {
	File     string `json:"file"`      // base name, part-NNNNN.arrow or part-NNNNN.parquet
	FirstRow int64  `json:"first_row"` // position of the part's first row in the directory (sum of Rows before it)
	Rows     int64  `json:"rows"`
	Bytes    int64  `json:"bytes"`  // file size
	SHA256   string `json:"sha256"` // hex sha256 of the file
}

// Config returns the cache Config the manifest describes.
func (m Manifest) Config() Config {
	return Config{
		Classes:           m.Classes,
		ScoreDtype:        m.Settings.Dtype,
		TopK:              m.Settings.TopK,
		Positions:         m.Settings.Positions,
		TopKLogProbs:      m.Settings.TopKLogProbs,
		Samples:           m.Settings.Samples,
		SampleTemperature: m.Settings.SampleTemperature,
		SampleSeed:        m.Settings.SampleSeed,
		HasLabel:          m.Settings.HasLabel,
		Hidden:            m.Settings.Hidden,
		Inputs:            m.Settings.Inputs,
	}
}

// Digest returns the hex sha256 of the manifest's JSON encoding
// (encoding/json, struct field order, no indentation), including parts.
// Train and export record it as the provenance of a cache.
func (m Manifest) Digest() string {
	data, err := json.Marshal(&m)
	if err != nil { // only a time.Time outside years 0..9999 can fail
		data = []byte(err.Error())
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// partCopy returns the manifest as stored in each part's schema metadata.
func (m Manifest) partCopy() Manifest {
	c := m
	c.Parts = nil
	c.Rows = 0
	return c
}

// ReadManifest reads and validates the committed manifest of the cache
// directory dir, a path or a store location (see ParseManifest). A
// directory with no manifest.json fails with an error wrapping
// fs.ErrNotExist; if it holds the journal of an attempt, the error says
// that the extraction is running or was interrupted, and how far it got.
func ReadManifest(dir string) (Manifest, error) {
	d, err := store.OpenDir(ctxBG, dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("formats: %w", err)
	}
	return readManifestIn(d)
}

func readManifestIn(d *store.Dir) (Manifest, error) {
	data, err := d.ReadFile(ctxBG, ManifestName, maxManifestBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, notCommitted(d, err)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("formats: %w", err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", d.Path(ManifestName), err)
	}
	return m, nil
}

// notCommitted explains a missing manifest: no cache at all, or attempts
// that have not committed.
func notCommitted(d *store.Dir, err error) error {
	entries, lerr := d.List(ctxBG)
	if lerr != nil {
		return fmt.Errorf("formats: %w", err)
	}
	var rows int64
	n := 0
	for _, a := range readAttempts(d, entries) {
		n++
		if a.Err == nil {
			rows = max(rows, a.Manifest.Rows)
		}
	}
	if n == 0 {
		return fmt.Errorf("formats: %s: no %s (not a cache directory): %w", d, ManifestName, fs.ErrNotExist)
	}
	return fmt.Errorf("%w: %s has no committed %s: %d attempt(s) wrote up to %d rows and have not committed; the extraction is still running, or was interrupted (rerun it with --resume): %w",
		ErrIncomplete, d, ManifestName, n, rows, fs.ErrNotExist)
}

// ParseManifest decodes and validates manifest JSON. A version with a newer
// MAJOR than VersionMajor yields an error wrapping ErrVersion; content that
// is inconsistent (unknown format, parts whose rows do not add up, bad file
// names, an invalid Config) wraps ErrCorrupt or ErrSchema.
func ParseManifest(data []byte) (Manifest, error) {
	if len(data) > maxManifestBytes {
		return Manifest{}, fmt.Errorf("%w: manifest larger than %d bytes", ErrCorrupt, maxManifestBytes)
	}
	var head struct {
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	var v string
	if head.Version == nil || json.Unmarshal(head.Version, &v) != nil {
		return Manifest{}, fmt.Errorf("%w: manifest has no version string", ErrVersion)
	}
	if _, _, err := parseVersion(v); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if err := m.validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// parseVersion parses "MAJOR.MINOR" and checks that this package reads it.
func parseVersion(v string) (major, minor int, err error) {
	bad := func() (int, int, error) {
		return 0, 0, fmt.Errorf("%w: read version %q, this reader supports %d.x (up to %s)", ErrVersion, v, VersionMajor, Version)
	}
	if len(v) > 21 {
		return bad()
	}
	dot := bytes.IndexByte([]byte(v), '.')
	if dot < 0 {
		return bad()
	}
	major, err1 := strconv.Atoi(v[:dot])
	minor, err2 := strconv.Atoi(v[dot+1:])
	if err1 != nil || err2 != nil || major < 1 || minor < 0 || v[0] == '+' || v[dot+1] == '+' || v[dot+1] == '-' {
		return bad()
	}
	if major > VersionMajor {
		return 0, 0, fmt.Errorf("%w: read version %s, this reader supports %d.x (up to %s); upgrade distill", ErrVersion, v, VersionMajor, Version)
	}
	return major, minor, nil
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// nowMillis is the current time as a manifest records it.
func nowMillis() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// validate checks the manifest's internal consistency.
func (m *Manifest) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: manifest: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if _, err := m.Config().normalize(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	switch m.ScoreKind {
	case ScoreLogits, ScoreLogProbs, ScoreLogSoftmax:
	default:
		return bad("unknown score_kind %q", m.ScoreKind)
	}
	s := m.Settings
	if s.ShardCount < 1 || s.ShardIndex < 0 || s.ShardIndex >= s.ShardCount {
		return bad("shard %d of %d", s.ShardIndex, s.ShardCount)
	}
	if s.Format != FormatArrow && s.Format != FormatParquet {
		return bad("unknown format %q", s.Format)
	}
	switch s.Compression {
	case CompressionNone, CompressionLZ4, CompressionZstd:
	default:
		return bad("unknown compression %q", s.Compression)
	}
	if s.RowsPerBatch < 1 {
		return bad("rows_per_batch %d", s.RowsPerBatch)
	}
	if s.KeepInput != (len(s.Inputs) > 0) {
		return bad("keep_input %v with %d inputs", s.KeepInput, len(s.Inputs))
	}
	if m.Rows < 0 {
		return bad("rows %d", m.Rows)
	}
	for i, in := range m.Dataset.Inputs {
		if in.Name == "" || in.Column == "" {
			return bad("dataset input %d has no name or column", i)
		}
		for _, d := range in.Shape {
			if d < 1 || d > maxWidth {
				return bad("dataset input %q: shape %v", in.Name, in.Shape)
			}
		}
	}
	var next int64
	seen := make(map[string]bool, len(m.Parts))
	for i, p := range m.Parts {
		if !partNameRE.MatchString(p.File) || filepath.Ext(p.File) != s.Format.Ext() {
			return bad("part %d: bad file name %q for format %s", i, p.File, s.Format)
		}
		if seen[p.File] {
			return bad("part %d: duplicate file %q", i, p.File)
		}
		seen[p.File] = true
		if p.FirstRow != next || p.Rows < 1 || p.Rows > 1<<40 {
			return bad("part %s: first_row %d rows %d, want first_row %d", p.File, p.FirstRow, p.Rows, next)
		}
		next += p.Rows
		if p.Bytes < 0 || !sha256RE.MatchString(p.SHA256) {
			return bad("part %s: bad size or sha256", p.File)
		}
	}
	if next != m.Rows {
		return bad("parts hold %d rows, manifest says %d", next, m.Rows)
	}
	return nil
}

// errNotManifest is returned for a part whose metadata has no manifest.
var errNotManifest = errors.New("no " + MetaManifest + " metadata")

// jsonMarshal is json.Marshal, named for the tests.
var jsonMarshal = func(v any) ([]byte, error) { return json.Marshal(v) }
