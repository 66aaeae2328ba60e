package formats

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/distill-ml/distill/internal/store"
)

// maxOpenParts bounds the part files a Cache keeps open.
const maxOpenParts = 16

// Cache is a cache opened for reading: one or more shard directories merged
// into one logical sequence of rows, read in batches ("units"), each one
// record batch or row group of one part. It is safe for concurrent use.
type Cache struct {
	opts    ReaderOptions
	cfg     Config
	shards  []shardDir // by shard index
	parts   []cachePart
	units   []Unit
	rows    int64
	missing []int
	// uncommitted lists shard directories found below a parent that hold
	// no committed manifest (counted in missing when their index is).
	uncommitted []string

	mu     sync.Mutex
	open   map[int]*openPart
	clock  int64
	closed bool
}

type shardDir struct {
	dir string
	d   *store.Dir
	m   Manifest
}

type cachePart struct {
	shard     int // index into Cache.shards
	d         *store.Dir
	path      string
	info      PartInfo
	firstUnit int
	numUnits  int
	hash      *partHash
}

// partHash is the outcome of checking a part file against its manifest's
// size and sha256, done once per Cache.
type partHash struct {
	once sync.Once
	err  error
}

// check hashes the part the first time it is called and returns the
// outcome, the same every time.
func (p *cachePart) check() error {
	p.hash.once.Do(func() { p.hash.err = checkPartFile(p.d, p.info) })
	return p.hash.err
}

// checked records that the part was hashed and matched (by Verify).
func (p *cachePart) checked() { p.hash.once.Do(func() {}) }

type openPart struct {
	r    *Reader
	refs int
	used int64
	err  error
}

// Unit is one batch of a cache: record batch or row group Batch of the
// part file Path. All units but the last of each part have
// Settings.RowsPerBatch rows.
type Unit struct {
	Path   string // part file
	Part   int    // index of the part in the cache: shards in index order, then parts in manifest order
	Batch  int    // batch index within the part
	Rows   int    // rows in the unit
	Offset int64  // position of the unit's first row in the cache
}

// Open opens a cache with default ReaderOptions; see OpenWithOptions.
func Open(paths ...string) (*Cache, error) {
	return OpenWithOptions(nil, paths...)
}

// OpenWithOptions opens a cache made of one directory or of several shard
// directories (a path may also name a manifest.json, or a directory whose
// shard-*-of-* subdirectories hold the shards; see ShardDirName). It reads every
// manifest and checks that they agree: same teacher sha256, score kind,
// classes, schema and settings other than ShardIndex, each shard index at
// most once. If shards of the N are missing it fails with an error wrapping
// ErrIncomplete that lists them, unless opts.AllowMissingShards. It checks
// that every part file exists with the size its manifest records; contents
// are checked as they are read (sha256 when a part is first opened, unless
// opts.SkipHashCheck; schema, batch layout) and by Verify (also values).
func OpenWithOptions(opts *ReaderOptions, paths ...string) (*Cache, error) {
	if len(paths) == 0 {
		return nil, errors.New("formats: open: no cache directory given")
	}
	c := &Cache{opts: opts.resolve(), open: map[int]*openPart{}}
	seen := map[string]bool{}
	var expanded []string
	fromParent := map[string]bool{} // shard directories found below a parent
	var uncommitted []string
	for _, p := range paths {
		if sub := expandShards(p); sub != nil {
			expanded = append(expanded, sub...)
			for _, s := range sub {
				fromParent[s] = true
			}
		} else {
			expanded = append(expanded, p)
		}
	}
	for _, p := range expanded {
		dir := p
		if store.Base(p) == ManifestName {
			if st, err := store.Stat(ctxBG, p); err == nil && !st.IsDir {
				dir = store.Parent(p)
			}
		}
		d, err := store.OpenDir(ctxBG, dir)
		if err != nil {
			return nil, fmt.Errorf("formats: %w", err)
		}
		abs := d.Abs()
		if seen[abs] {
			continue
		}
		seen[abs] = true
		m, err := readManifestIn(d)
		if err != nil {
			if fromParent[p] && errors.Is(err, fs.ErrNotExist) {
				// A shard of the parent that has not committed counts as
				// missing; the error below says why.
				uncommitted = append(uncommitted, store.Base(p))
				c.uncommitted = append(c.uncommitted, p)
				continue
			}
			return nil, err
		}
		c.shards = append(c.shards, shardDir{dir: dir, d: d, m: m})
	}
	if len(c.shards) == 0 {
		return nil, fmt.Errorf("%w: %s: no shard has committed (%s): still being extracted, or interrupted; rerun with --resume",
			ErrIncomplete, strings.Join(paths, " "), strings.Join(uncommitted, ", "))
	}
	first := &c.shards[0]
	for i := 1; i < len(c.shards); i++ {
		if err := compatible(first, &c.shards[i]); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(c.shards, func(a, b shardDir) int { return a.m.Settings.ShardIndex - b.m.Settings.ShardIndex })
	n := c.shards[0].m.Settings.ShardCount
	for i := 1; i < len(c.shards); i++ {
		if a, b := c.shards[i-1], c.shards[i]; a.m.Settings.ShardIndex == b.m.Settings.ShardIndex {
			return nil, fmt.Errorf("%w: shard %d of %d given twice: %s and %s", ErrSchema, b.m.Settings.ShardIndex, n, a.dir, b.dir)
		}
	}
	have := map[int]bool{}
	for _, s := range c.shards {
		have[s.m.Settings.ShardIndex] = true
	}
	for i := 0; i < n; i++ {
		if !have[i] {
			c.missing = append(c.missing, i)
		}
	}
	if len(c.missing) > 0 && !c.opts.AllowMissingShards {
		why := ""
		if len(uncommitted) > 0 {
			why = fmt.Sprintf(" (%s not committed: still being extracted, or interrupted; rerun those shards with --resume)", strings.Join(uncommitted, ", "))
		}
		return nil, fmt.Errorf("%w: %d of %d shards given, missing shards %v%s", ErrIncomplete, len(c.shards), n, c.missing, why)
	}
	var err error
	if c.cfg, err = c.shards[0].m.Config().normalize(); err != nil {
		return nil, err
	}
	for si, s := range c.shards {
		rpb := s.m.Settings.RowsPerBatch
		// One listing per shard gives every part's size (one request
		// on object storage, not one per part).
		entries, err := s.d.List(ctxBG)
		if err != nil {
			return nil, fmt.Errorf("formats: %w", err)
		}
		sizes := make(map[string]int64, len(entries))
		for _, e := range entries {
			sizes[e.Name] = e.Size
		}
		for _, p := range s.m.Parts {
			path := s.d.Path(p.File)
			size, ok := sizes[p.File]
			if !ok {
				return nil, corrupt(path, -1, fmt.Errorf("part listed in manifest: %w", fs.ErrNotExist))
			}
			if size != p.Bytes {
				return nil, corrupt(path, -1, fmt.Errorf("file has %d bytes, manifest says %d", size, p.Bytes))
			}
			cp := cachePart{shard: si, d: s.d, path: path, info: p, firstUnit: len(c.units), hash: &partHash{}}
			for b, off := 0, int64(0); off < p.Rows; b++ {
				rows := int(min(int64(rpb), p.Rows-off))
				c.units = append(c.units, Unit{Path: path, Part: len(c.parts), Batch: b, Rows: rows, Offset: c.rows + off})
				off += int64(rows)
			}
			cp.numUnits = len(c.units) - cp.firstUnit
			c.parts = append(c.parts, cp)
			c.rows += p.Rows
		}
	}
	return c, nil
}

// compatible checks that two shard manifests describe the same cache.
func compatible(a, b *shardDir) error {
	diff := func(what string) error {
		return fmt.Errorf("%w: %s and %s differ in %s", ErrSchema, a.dir, b.dir, what)
	}
	if a.m.Teacher.SHA256 != b.m.Teacher.SHA256 {
		return diff("teacher sha256")
	}
	if a.m.ScoreKind != b.m.ScoreKind {
		return diff("score kind")
	}
	if a.m.Dataset.SHA256 != b.m.Dataset.SHA256 {
		return diff("dataset sha256")
	}
	ca, _ := a.m.Config().normalize()
	cb, _ := b.m.Config().normalize()
	if !reflect.DeepEqual(ca, cb) {
		return diff("schema (classes, top-k, dtype, label, hidden or inputs)")
	}
	sa, sb := a.m.Settings, b.m.Settings
	sa.ShardIndex, sb.ShardIndex = 0, 0
	if jsonOf(sa) != jsonOf(sb) {
		return diff("settings")
	}
	return nil
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Config returns the Config of the cache.
func (c *Cache) Config() Config { return c.cfg }

// Manifest returns the manifest of the first shard directory (lowest shard
// index); for an unsharded cache, the cache's manifest.
func (c *Cache) Manifest() Manifest { return c.shards[0].m }

// Dir returns the directory of the first shard (lowest shard index), as
// an absolute path when it can be made one: where Manifest was read.
func (c *Cache) Dir() string { return c.shards[0].d.Abs() }

// Manifests returns the manifest of every shard directory opened, in shard
// index order.
func (c *Cache) Manifests() []Manifest {
	ms := make([]Manifest, len(c.shards))
	for i, s := range c.shards {
		ms[i] = s.m
	}
	return ms
}

// Digest identifies the cache's content for provenance: for one directory
// its Manifest().Digest(), for several the hex sha256 of their digests
// joined by newlines in shard order.
func (c *Cache) Digest() string {
	if len(c.shards) == 1 {
		return c.shards[0].m.Digest()
	}
	h := sha256.New()
	for _, s := range c.shards {
		fmt.Fprintln(h, s.m.Digest())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Uncommitted lists the shard directories below a parent given to Open
// that hold no committed manifest (their attempts are listed by
// Attempts).
func (c *Cache) Uncommitted() []string { return slices.Clone(c.uncommitted) }

// Leftovers lists, for every shard opened, the files of the protocol
// (parts, journals, temporary files) that its committed manifest does not
// name: what failed, superseded or duplicate attempts left. Readers never
// read them; GC removes them.
func (c *Cache) Leftovers() ([]Leftover, error) {
	var out []Leftover
	for _, s := range c.shards {
		entries, err := s.d.List(ctxBG)
		if err != nil {
			return nil, fmt.Errorf("formats: %w", err)
		}
		out = append(out, leftovers(s.d, s.m, entries)...)
	}
	return out, nil
}

// GC removes the Leftovers of every shard opened and returns them. A
// local shard directory is locked while it is cleaned, so GC fails with
// an error wrapping ErrLocked rather than race a local writer; on object
// storage a writer still running on a committed shard can only lose its
// commit, so removing its parts changes nothing that is read. Shards that
// have not committed are not touched: their files are what --resume
// continues.
func (c *Cache) GC() ([]Leftover, error) {
	var removed []Leftover
	for _, s := range c.shards {
		unlock, err := lockDir(s.d)
		if err != nil {
			return removed, err
		}
		entries, err := s.d.List(ctxBG)
		if err == nil {
			for _, l := range leftovers(s.d, s.m, entries) {
				if err = s.d.Remove(ctxBG, l.Name); err != nil {
					break
				}
				removed = append(removed, l)
			}
		}
		unlock()
		if err != nil {
			return removed, fmt.Errorf("formats: gc %s: %w", s.d, err)
		}
	}
	return removed, nil
}

// MissingShards lists the shard indices of the N that were not opened.
func (c *Cache) MissingShards() []int { return slices.Clone(c.missing) }

// NumRows returns the number of rows in the opened shards.
func (c *Cache) NumRows() int64 { return c.rows }

// NumBatches returns the number of units.
func (c *Cache) NumBatches() int { return len(c.units) }

// Units returns every unit in cache order.
func (c *Cache) Units() []Unit { return slices.Clone(c.units) }

// ReadBatch decodes unit u into dst (see Reader.ReadBatch). Units may be
// read in any order and concurrently. The first read of a part hashes the
// whole file and checks its size and sha256 against the manifest (unless
// ReaderOptions.SkipHashCheck); the part's schema and embedded manifest are
// checked against the manifest when the part is opened, and the unit's row
// count after decoding. A mismatch is a *CorruptError naming the part, or
// wraps ErrSchema; a part that failed its hash fails every later read.
func (c *Cache) ReadBatch(u int, dst *Batch) error {
	if u < 0 || u >= len(c.units) {
		return fmt.Errorf("formats: unit %d out of range [0, %d)", u, len(c.units))
	}
	unit := c.units[u]
	op, err := c.acquire(unit.Part)
	if err != nil {
		return err
	}
	defer c.release(unit.Part)
	if err := op.r.ReadBatch(unit.Batch, dst); err != nil {
		return err
	}
	if dst.Len() != unit.Rows {
		return corrupt(unit.Path, unit.Batch, fmt.Errorf("batch has %d rows, manifest implies %d", dst.Len(), unit.Rows))
	}
	return nil
}

// acquire returns the open reader of part p, opening and checking it if
// needed, and holds a reference until release.
func (c *Cache) acquire(p int) (*openPart, error) {
	// Hash outside c.mu: reads of other parts go on meanwhile, and
	// concurrent first reads of this part wait for one hash.
	if !c.opts.SkipHashCheck {
		if err := c.parts[p].check(); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("formats: read from closed Cache")
	}
	c.clock++
	if op, ok := c.open[p]; ok {
		op.refs++
		op.used = c.clock
		return op, nil
	}
	r, err := c.openPart(p)
	if err != nil {
		return nil, err
	}
	c.evict()
	op := &openPart{r: r, refs: 1, used: c.clock}
	c.open[p] = op
	return op, nil
}

func (c *Cache) release(p int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if op, ok := c.open[p]; ok {
		op.refs--
		if c.closed && op.refs == 0 {
			op.r.Close()
			delete(c.open, p)
		}
	}
}

// evict closes least recently used idle parts beyond maxOpenParts-1.
func (c *Cache) evict() {
	for len(c.open) >= maxOpenParts {
		victim, oldest := -1, int64(-1)
		for p, op := range c.open {
			if op.refs == 0 && (victim < 0 || op.used < oldest) {
				victim, oldest = p, op.used
			}
		}
		if victim < 0 {
			return
		}
		c.open[victim].r.Close()
		delete(c.open, victim)
	}
}

// openPart opens part p and checks it against its manifest.
func (c *Cache) openPart(p int) (*Reader, error) {
	cp := c.parts[p]
	r, err := OpenReader(cp.path, &c.opts)
	if err != nil {
		return nil, err
	}
	if err := checkPartOf(r, &c.shards[cp.shard].m, c.cfg); err != nil {
		r.Close()
		return nil, err
	}
	if r.NumBatches() != cp.numUnits {
		r.Close()
		return nil, corrupt(cp.path, -1, fmt.Errorf("part has %d batches, manifest implies %d", r.NumBatches(), cp.numUnits))
	}
	return r, nil
}

// All streams every unit in order. The yielded *Batch is reused: it is
// valid until the next iteration (use Batch.Clone to keep it). After an
// error All yields (nil, err) once and stops. At most one batch is in
// memory at a time.
func (c *Cache) All() iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		var b Batch
		for u := range c.units {
			if err := c.ReadBatch(u, &b); err != nil {
				yield(nil, err)
				return
			}
			if !yield(&b, nil) {
				return
			}
		}
	}
}

// Close closes every open part file. Reads in progress finish first.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for p, op := range c.open {
		if op.refs == 0 {
			op.r.Close()
			delete(c.open, p)
		}
	}
	return nil
}
