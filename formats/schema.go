package formats

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
)

// Version is the cache format version this package writes, "MAJOR.MINOR".
// Readers accept any version with MAJOR <= VersionMajor; a MINOR bump only
// adds optional fields. 1.1 added the dataset recipe (Dataset.Options,
// Inputs and Preprocess) to the manifest; 1.2 per-token caches
// (Config.Positions, MetaPositions, Settings.Positions); 1.3 the commit
// protocol of CacheWriter (part files named per attempt, journals, the
// manifest written once, create-only, at the end), which readers of 1.x
// read as before.
const (
	Version      = "1.3"
	VersionMajor = 1
	VersionMinor = 3
)

// Column names of the cache schema.
const (
	ColRow            = "row"             // int64: index of the sample in the source dataset
	ColLabel          = "label"           // int64: dataset label, when Config.HasLabel ([T]: next-token ids, per token)
	ColLogits         = "logits"          // fixed_size_list<float32|float16>[C]: raw teacher scores ([T·C] per token)
	ColTopKIndex      = "topk_index"      // fixed_size_list<int32>[k]: class ids of the k largest scores ([T·k])
	ColTopKLogit      = "topk_logit"      // fixed_size_list<float32|float16>[k]: those scores, descending ([T·k])
	ColLogSumExp      = "logsumexp"       // float32: log Σ_c exp(score_c) over all C scores ([T] per token)
	ColSampleCount    = "sample_count"    // list<uint>: draws of each topk_index id, for a sampled cache (see Config.Samples)
	ColSampleDistinct = "sample_distinct" // uint ([T] per token): distinct ids drawn at each position, for a sampled cache
	HiddenPrefix      = "hidden."         // + name: fixed_size_list<float32|float16>[n], a teacher hidden state
	InputPrefix       = "input."          // + name: fixed_size_list<float32>[n], a model input
)

// Arrow schema metadata keys. Schema sets the first four on the schema;
// MetaShape is set on every hidden.* and input.* field; a CacheWriter adds
// MetaManifest and MetaTeacher to every part it writes.
const (
	MetaVersion      = "distill.version"        // format version, "MAJOR.MINOR"
	MetaClasses      = "distill.classes"        // C, decimal
	MetaScoreDtype   = "distill.score_dtype"    // "float32" or "float16"
	MetaTopK         = "distill.topk"           // k, decimal; "0" for full logits
	MetaPositions    = "distill.positions"      // T, decimal, for a per-token cache; absent otherwise
	MetaTopKLogProbs = "distill.topk_log_probs" // "true" when topk_logit stores t_j − logsumexp (Config.TopKLogProbs)
	MetaSamples      = "distill.samples"        // S, decimal, for a sampled cache (Config.Samples)
	MetaSampling     = "distill.sampling"       // JSON {"temperature": τ, "seed": n} of a sampled cache
	MetaShape        = "distill.shape"          // per-sample shape as a JSON array, e.g. "[1,28,28]"
	MetaManifest     = "distill.manifest"       // the cache manifest as JSON, without its parts list
	MetaTeacher      = "distill.teacher_sha256" // hex sha256 of the teacher model file
)

// Limits on the schema, so that a hostile schema cannot ask for absurd sizes.
const (
	maxWidth     = 1 << 28 // values per sample in one column
	maxNameLen   = 256     // bytes in a hidden or input name
	maxTensors   = 1024    // hidden plus input columns
	maxClassesC  = math.MaxInt32
	maxPositions = 1 << 20 // tokens per row of a per-token cache
)

// Dtype is the element type a float column is stored as. Readers always
// return float32.
type Dtype string

// Storage dtypes. The empty Dtype means Float32.
const (
	Float32 Dtype = "float32"
	Float16 Dtype = "float16" // IEEE 754 binary16; |x| > 65504 becomes ±Inf
)

func (d Dtype) orDefault() Dtype {
	if d == "" {
		return Float32
	}
	return d
}

func (d Dtype) valid() bool { d = d.orDefault(); return d == Float32 || d == Float16 }

// TensorSpec describes one per-sample tensor stored as a column: a teacher
// hidden state or a model input.
type TensorSpec struct {
	Name  string  `json:"name"`            // ONNX name; the column is HiddenPrefix+Name or InputPrefix+Name
	Shape []int64 `json:"shape"`           // per-sample shape, without the batch dimension; every dim >= 1
	Dtype Dtype   `json:"dtype,omitempty"` // storage dtype; "" means Float32
}

// Size returns the number of values per sample, the product of Shape (1 for
// an empty shape).
func (t TensorSpec) Size() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// Config is what a cache stores per sample. It determines the Arrow schema
// (see Schema) and is recorded in the manifest.
type Config struct {
	Classes    int   // C, the number of teacher classes (a vocabulary for a language model); >= 1
	ScoreDtype Dtype // storage of logits / topk_logit; "" means Float32
	TopK       int   // 0 stores all C logits; 1..C stores top-k + logsumexp
	// Positions is T for a per-token cache (a language-model teacher): each
	// row is a window of T tokens with a score vector per token, so label,
	// logits, topk_* and logsumexp hold T times the values of a per-sample
	// row, position-major ([T, C], [T, k], [T]); the label of position t
	// is the token that follows it. 0 is a per-sample cache.
	Positions int
	// TopKLogProbs stores the top-k scores as log-probabilities
	// t_j − logsumexp instead of raw logits. Readers add logsumexp back,
	// so Batch.TopKLogit holds logits either way. With float16 storage
	// this keeps the cached mass exact to about 1e-4 where raw logits
	// (up to ~24, float16 steps of 0.008–0.016) err by ~2e-3 and sum past
	// 1 at a quarter of a language model's positions.
	TopKLogProbs bool
	// Samples is S > 0 for sampled targets (Anshumann et al. 2025, "Sparse
	// Logit Sampling"): per position, S draws from softmax(t/τ) with
	// τ = SampleTemperature, kept as the distinct drawn ids with their
	// draw counts and logits, and logsumexp over all C. The draws of row
	// r, position t come from rand.NewPCG(SampleSeed, r·2^20 + t): a pure
	// function of the row, so resuming and sharding give the same bytes.
	//
	// In a Batch, TopK is min(S, C) slots per position: the distinct ids
	// by descending score (ties: the lower id), then padding that repeats
	// the last id with count 0. On disk only the drawn ids are stored:
	// topk_index, topk_logit and sample_count are variable-length lists,
	// each row's entries position after position with ids ascending within
	// a position (ascending ids compress better), and sample_distinct says
	// how many entries each position has.
	Samples           int
	SampleTemperature float64 // τ of the proposal softmax; 0 means 1
	SampleSeed        uint64
	HasLabel          bool         // store the dataset label column
	Hidden            []TensorSpec // hidden states, in column order
	Inputs            []TensorSpec // model inputs, in column order; Dtype must be Float32
}

// sampling is the JSON of MetaSampling.
type sampling struct {
	Temperature float64 `json:"temperature"`
	Seed        uint64  `json:"seed"`
}

// normalize validates c and returns a copy with defaults filled in
// (empty dtypes become Float32) and slices copied.
func (c Config) normalize() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: config: %s", ErrSchema, fmt.Sprintf(format, args...))
	}
	if c.Classes < 1 || c.Classes > maxClassesC || (c.TopK == 0 && c.Classes > maxWidth) {
		return bad("classes %d out of range", c.Classes)
	}
	if !c.ScoreDtype.valid() {
		return bad("score dtype %q, want float32 or float16", c.ScoreDtype)
	}
	c.ScoreDtype = c.ScoreDtype.orDefault()
	if c.TopK < 0 || c.TopK > c.Classes || c.TopK > maxWidth {
		return bad("top-k %d out of range [0, %d]", c.TopK, c.Classes)
	}
	if c.Samples < 0 || c.Samples > 1<<16 {
		return bad("samples %d out of range [0, %d]", c.Samples, 1<<16)
	}
	if c.Samples > 0 {
		if c.TopK != 0 && c.TopK != min(c.Samples, c.Classes) {
			return bad("samples %d with top-k %d: a sampled cache keeps its S draws in the top-k columns", c.Samples, c.TopK)
		}
		c.TopK = min(c.Samples, c.Classes)
		if c.SampleTemperature == 0 {
			c.SampleTemperature = 1
		}
		if !(c.SampleTemperature > 0) || math.IsInf(c.SampleTemperature, 0) {
			return bad("sample temperature %v: want a positive finite value", c.SampleTemperature)
		}
	} else if c.SampleTemperature != 0 || c.SampleSeed != 0 {
		return bad("sample temperature or seed without samples")
	}
	if c.TopKLogProbs && c.TopK == 0 {
		return bad("top-k log-probabilities without top-k")
	}
	if c.Positions < 0 || c.Positions > maxPositions {
		return bad("positions %d out of range [0, %d]", c.Positions, maxPositions)
	}
	if p := int64(c.positions()); (c.TopK == 0 && p*int64(c.Classes) > maxWidth) || p*int64(c.TopK) > maxWidth {
		return bad("%d positions × %d scores is more than %d values per row", p, max(c.TopK, c.Classes), maxWidth)
	}
	if len(c.Hidden)+len(c.Inputs) > maxTensors {
		return bad("%d hidden and input tensors, at most %d", len(c.Hidden)+len(c.Inputs), maxTensors)
	}
	var err error
	if c.Hidden, err = normalizeSpecs("hidden", c.Hidden, false); err != nil {
		return Config{}, err
	}
	if c.Inputs, err = normalizeSpecs("input", c.Inputs, true); err != nil {
		return Config{}, err
	}
	return c, nil
}

func normalizeSpecs(kind string, specs []TensorSpec, onlyF32 bool) ([]TensorSpec, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make([]TensorSpec, len(specs))
	seen := make(map[string]bool, len(specs))
	for i, s := range specs {
		if err := checkName(s.Name); err != nil {
			return nil, fmt.Errorf("%w: config: %s %q: %v", ErrSchema, kind, s.Name, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%w: config: duplicate %s name %q", ErrSchema, kind, s.Name)
		}
		seen[s.Name] = true
		if !s.Dtype.valid() || (onlyF32 && s.Dtype.orDefault() != Float32) {
			return nil, fmt.Errorf("%w: config: %s %q: dtype %q not supported", ErrSchema, kind, s.Name, s.Dtype)
		}
		n := int64(1)
		for _, d := range s.Shape {
			if d < 1 || d > maxWidth || n*d > maxWidth {
				return nil, fmt.Errorf("%w: config: %s %q: shape %v: dims must be >= 1 with at most %d values", ErrSchema, kind, s.Name, s.Shape, maxWidth)
			}
			n *= d
		}
		out[i] = TensorSpec{Name: s.Name, Shape: append([]int64{}, s.Shape...), Dtype: s.Dtype.orDefault()}
	}
	return out, nil
}

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("name must be 1..%d bytes of UTF-8", maxNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("name has a control character")
		}
	}
	return nil
}

// colKind is the element type of a column as stored.
type colKind uint8

const (
	kInt64 colKind = iota
	kInt32
	kFloat32
	kFloat16
	kUint8
	kUint16
	kUint32
)

func (k colKind) size() int {
	switch k {
	case kInt64:
		return 8
	case kInt32, kFloat32, kUint32:
		return 4
	case kUint8:
		return 1
	default:
		return 2
	}
}

func (k colKind) arrow() arrow.DataType {
	switch k {
	case kInt64:
		return arrow.PrimitiveTypes.Int64
	case kInt32:
		return arrow.PrimitiveTypes.Int32
	case kFloat32:
		return arrow.PrimitiveTypes.Float32
	case kUint8:
		return arrow.PrimitiveTypes.Uint8
	case kUint16:
		return arrow.PrimitiveTypes.Uint16
	case kUint32:
		return arrow.PrimitiveTypes.Uint32
	default:
		return arrow.FixedWidthTypes.Float16
	}
}

// unsignedFor returns the narrowest unsigned kind holding 0..n−1.
func unsignedFor(n int) colKind {
	switch {
	case n <= 1<<8:
		return kUint8
	case n <= 1<<16:
		return kUint16
	}
	return kUint32
}

func kindOf(d Dtype) colKind {
	if d.orDefault() == Float16 {
		return kFloat16
	}
	return kFloat32
}

// colRole says which Batch field a column maps to.
type colRole uint8

const (
	roleRow colRole = iota
	roleLabel
	roleLogits
	roleTopKIndex
	roleTopKLogit
	roleLogSumExp
	roleSampleCount
	roleSampleDistinct
	roleHidden
	roleInput
)

// column is one column of the cache schema.
type column struct {
	name  string
	role  colRole
	key   string // hidden/input name
	kind  colKind
	width int // 0 for a scalar column, else the fixed_size_list size
	// ragged makes the column a list<kind> of at most width values per
	// row (the entries of a sampled cache).
	ragged bool
	shape  []int64
}

// values returns the number of values per row, at most for a ragged column.
func (c column) values() int { return max(c.width, 1) }

func (c column) arrowType() arrow.DataType {
	if c.ragged {
		return arrow.ListOfNonNullable(c.kind.arrow())
	}
	if c.width == 0 {
		return c.kind.arrow()
	}
	return arrow.FixedSizeListOfNonNullable(int32(c.width), c.kind.arrow())
}

// positions returns the score vectors per row: Positions, or 1 for a
// per-sample cache.
func (c Config) positions() int { return max(c.Positions, 1) }

// ScoreRows returns the number of score vectors (positions) in n rows.
func (c Config) ScoreRows(n int) int { return n * c.positions() }

// columns lists the columns of a normalized config in schema order.
func (c Config) columns() []column {
	cols := []column{{name: ColRow, role: roleRow, kind: kInt64}}
	// perPos is the width of a column holding one value per position:
	// scalar for a per-sample cache, a list of T for a per-token one.
	perPos := c.Positions
	p := c.positions()
	if c.HasLabel {
		cols = append(cols, column{name: ColLabel, role: roleLabel, kind: kInt64, width: perPos})
	}
	score := kindOf(c.ScoreDtype)
	if c.TopK == 0 {
		cols = append(cols, column{name: ColLogits, role: roleLogits, kind: score, width: p * c.Classes})
	} else {
		// Per-token caches store class ids and draw counts in the
		// narrowest unsigned type that holds them (uint16 for a
		// vocabulary of up to 65,536); per-sample caches keep the int32
		// of format 1.0 and 1.1.
		ids, counts := kInt32, kInt32
		if c.Positions > 0 {
			ids, counts = unsignedFor(c.Classes), unsignedFor(c.Samples+1)
		}
		ragged := c.Samples > 0
		cols = append(cols,
			column{name: ColTopKIndex, role: roleTopKIndex, kind: ids, width: p * c.TopK, ragged: ragged},
			column{name: ColTopKLogit, role: roleTopKLogit, kind: score, width: p * c.TopK, ragged: ragged},
			column{name: ColLogSumExp, role: roleLogSumExp, kind: kFloat32, width: perPos})
		if ragged {
			cols = append(cols,
				column{name: ColSampleCount, role: roleSampleCount, kind: counts, width: p * c.TopK, ragged: true},
				column{name: ColSampleDistinct, role: roleSampleDistinct, kind: unsignedFor(c.TopK + 1), width: perPos})
		}
	}
	for _, h := range c.Hidden {
		cols = append(cols, column{name: HiddenPrefix + h.Name, role: roleHidden, key: h.Name, kind: kindOf(h.Dtype), width: h.Size(), shape: h.Shape})
	}
	for _, in := range c.Inputs {
		cols = append(cols, column{name: InputPrefix + in.Name, role: roleInput, key: in.Name, kind: kFloat32, width: in.Size(), shape: in.Shape})
	}
	return cols
}

// rawRowBytes returns the bytes of one row's values in their storage
// types, at most for ragged columns.
func (c Config) rawRowBytes() int64 {
	var n int64
	for _, col := range c.columns() {
		n += int64(col.values() * col.kind.size())
	}
	return n
}

// rowBytes returns the decoded size of one row in float32/int bytes, the
// unit ReaderOptions.MaxBatchBytes is measured in.
func (c Config) rowBytes() int64 {
	var n int64
	for _, col := range c.columns() {
		n += int64(col.values()) * 8 // stored value + float32 copy, generously
	}
	return n
}

// Schema returns the Arrow schema of a cache part for cfg, with the metadata
// keys MetaVersion, MetaClasses, MetaScoreDtype and MetaTopK set and
// MetaShape on every hidden and input field. All fields are non-nullable.
// It returns an error wrapping ErrSchema if cfg is invalid.
func Schema(cfg Config) (*arrow.Schema, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return schemaOf(cfg, nil), nil
}

// schemaOf builds the schema of a normalized config plus extra metadata.
func schemaOf(cfg Config, extra map[string]string) *arrow.Schema {
	cols := cfg.columns()
	fields := make([]arrow.Field, len(cols))
	for i, col := range cols {
		fields[i] = arrow.Field{Name: col.name, Type: col.arrowType()}
		if col.role == roleHidden || col.role == roleInput {
			shape, _ := json.Marshal(col.shape)
			if col.shape == nil {
				shape = []byte("[]")
			}
			fields[i].Metadata = arrow.NewMetadata([]string{MetaShape}, []string{string(shape)})
		}
	}
	keys := []string{MetaVersion, MetaClasses, MetaScoreDtype, MetaTopK}
	vals := []string{Version, strconv.Itoa(cfg.Classes), string(cfg.ScoreDtype), strconv.Itoa(cfg.TopK)}
	if cfg.Positions > 0 {
		keys, vals = append(keys, MetaPositions), append(vals, strconv.Itoa(cfg.Positions))
	}
	if cfg.TopKLogProbs {
		keys, vals = append(keys, MetaTopKLogProbs), append(vals, "true")
	}
	if cfg.Samples > 0 {
		js, _ := json.Marshal(sampling{Temperature: cfg.SampleTemperature, Seed: cfg.SampleSeed})
		keys, vals = append(keys, MetaSamples, MetaSampling), append(vals, strconv.Itoa(cfg.Samples), string(js))
	}
	for _, k := range sortedKeys(extra) {
		if k == MetaVersion || k == MetaClasses || k == MetaScoreDtype || k == MetaTopK || k == MetaPositions || k == MetaTopKLogProbs ||
			k == MetaSamples || k == MetaSampling {
			continue
		}
		keys = append(keys, k)
		vals = append(vals, extra[k])
	}
	md := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(fields, &md)
}

// ConfigFromSchema recovers the Config a part schema was made from and checks
// that the schema is exactly Schema(cfg) up to list element names and
// nullability. Metadata MetaVersion must name a readable version. Errors wrap
// ErrSchema or ErrVersion and name the offending field.
func ConfigFromSchema(s *arrow.Schema) (Config, error) {
	if s == nil {
		return Config{}, fmt.Errorf("%w: nil schema", ErrSchema)
	}
	md := s.Metadata()
	get := func(k string) (string, bool) {
		i := md.FindKey(k)
		if i < 0 {
			return "", false
		}
		return md.Values()[i], true
	}
	v, ok := get(MetaVersion)
	if !ok {
		return Config{}, fmt.Errorf("%w: schema has no %s metadata: not a distill cache part", ErrSchema, MetaVersion)
	}
	if _, _, err := parseVersion(v); err != nil {
		return Config{}, err
	}
	var cfg Config
	atoi := func(k string) (int, error) {
		sv, ok := get(k)
		if !ok {
			return 0, fmt.Errorf("%w: schema has no %s metadata", ErrSchema, k)
		}
		n, err := strconv.Atoi(sv)
		if err != nil {
			return 0, fmt.Errorf("%w: schema metadata %s=%q: not an integer", ErrSchema, k, sv)
		}
		return n, nil
	}
	var err error
	if cfg.Classes, err = atoi(MetaClasses); err != nil {
		return Config{}, err
	}
	if cfg.TopK, err = atoi(MetaTopK); err != nil {
		return Config{}, err
	}
	if _, ok := get(MetaSamples); ok {
		if cfg.Samples, err = atoi(MetaSamples); err != nil {
			return Config{}, err
		}
		js, _ := get(MetaSampling)
		var sp sampling
		if err := json.Unmarshal([]byte(js), &sp); err != nil {
			return Config{}, fmt.Errorf("%w: schema metadata %s=%q: %v", ErrSchema, MetaSampling, js, err)
		}
		cfg.SampleTemperature, cfg.SampleSeed = sp.Temperature, sp.Seed
	}
	if v, ok := get(MetaTopKLogProbs); ok {
		if v != "true" {
			return Config{}, fmt.Errorf("%w: schema metadata %s=%q: want true", ErrSchema, MetaTopKLogProbs, v)
		}
		cfg.TopKLogProbs = true
	}
	if _, ok := get(MetaPositions); ok {
		if cfg.Positions, err = atoi(MetaPositions); err != nil {
			return Config{}, err
		}
		if cfg.Positions < 1 {
			return Config{}, fmt.Errorf("%w: schema metadata %s=%d: want at least 1", ErrSchema, MetaPositions, cfg.Positions)
		}
	}
	sd, _ := get(MetaScoreDtype)
	cfg.ScoreDtype = Dtype(sd)
	fields := s.Fields()
	for _, f := range fields {
		switch {
		case f.Name == ColLabel:
			cfg.HasLabel = true
		case len(f.Name) > len(HiddenPrefix) && f.Name[:len(HiddenPrefix)] == HiddenPrefix,
			len(f.Name) > len(InputPrefix) && f.Name[:len(InputPrefix)] == InputPrefix:
			hidden := f.Name[:len(HiddenPrefix)] == HiddenPrefix
			spec := TensorSpec{Dtype: Float32}
			if hidden {
				spec.Name = f.Name[len(HiddenPrefix):]
			} else {
				spec.Name = f.Name[len(InputPrefix):]
			}
			if fsl, ok := f.Type.(*arrow.FixedSizeListType); ok && fsl.Elem().ID() == arrow.FLOAT16 {
				spec.Dtype = Float16
			}
			i := f.Metadata.FindKey(MetaShape)
			if i < 0 {
				return Config{}, fmt.Errorf("%w: field %q has no %s metadata", ErrSchema, f.Name, MetaShape)
			}
			if err := json.Unmarshal([]byte(f.Metadata.Values()[i]), &spec.Shape); err != nil {
				return Config{}, fmt.Errorf("%w: field %q: bad %s %q", ErrSchema, f.Name, MetaShape, f.Metadata.Values()[i])
			}
			if len(spec.Shape) > 64 {
				return Config{}, fmt.Errorf("%w: field %q: shape has %d dims", ErrSchema, f.Name, len(spec.Shape))
			}
			if hidden {
				cfg.Hidden = append(cfg.Hidden, spec)
			} else {
				cfg.Inputs = append(cfg.Inputs, spec)
			}
		}
	}
	if cfg, err = cfg.normalize(); err != nil {
		return Config{}, err
	}
	if err := matchSchema(cfg, s); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// matchSchema checks that s has exactly the columns of cfg, in order, with
// the right types (list element names and nullability are not compared).
func matchSchema(cfg Config, s *arrow.Schema) error {
	cols := cfg.columns()
	fields := s.Fields()
	for i, col := range cols {
		if i >= len(fields) {
			return fmt.Errorf("%w: missing column %q", ErrSchema, col.name)
		}
		f := fields[i]
		if f.Name != col.name {
			return fmt.Errorf("%w: column %d is %q, want %q", ErrSchema, i, f.Name, col.name)
		}
		if !sameType(f.Type, col.arrowType()) {
			return fmt.Errorf("%w: column %q has type %s, want %s", ErrSchema, f.Name, f.Type, col.arrowType())
		}
	}
	if len(fields) > len(cols) {
		return fmt.Errorf("%w: unexpected column %q", ErrSchema, fields[len(cols)].Name)
	}
	return nil
}

func sameType(got, want arrow.DataType) bool {
	if got == nil {
		return false
	}
	if w, ok := want.(*arrow.ListType); ok {
		g, ok := got.(*arrow.ListType)
		return ok && g.Elem() != nil && g.Elem().ID() == w.Elem().ID()
	}
	w, ok := want.(*arrow.FixedSizeListType)
	if !ok {
		return got.ID() == want.ID()
	}
	g, ok := got.(*arrow.FixedSizeListType)
	return ok && g.Len() == w.Len() && g.Elem() != nil && g.Elem().ID() == w.Elem().ID()
}
