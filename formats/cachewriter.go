package formats

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/distill-ml/distill/internal/lock"
	"github.com/distill-ml/distill/internal/store"
)

// ErrCommitted is wrapped by the error of a CacheWriter whose shard was
// committed by another attempt first (Close), and of OpenCacheForAppend
// on a committed shard. The committed cache is whole and untouched.
var ErrCommitted = errors.New("formats: shard already committed")

// CommittedError is the error of a Close that lost the commit to another
// attempt: Manifest is the committed manifest, which names none of this
// attempt's own parts (Close removed them). It wraps ErrCommitted.
type CommittedError struct {
	Dir      string
	Manifest Manifest
}

func (e *CommittedError) Error() string {
	return fmt.Sprintf("formats: %s was committed by another attempt first (%d rows); this attempt's parts were removed", e.Dir, e.Manifest.Rows)
}

func (e *CommittedError) Unwrap() error { return ErrCommitted }

// CacheWriter writes one cache directory (a shard): part files plus, at
// the end, manifest.json. The protocol needs no lock, so it holds on
// object storage as on a local disk:
//
//   - Each writer is an attempt with a random id; its part files are
//     named part-NNNNN-ID.ext, so two attempts never write the same name.
//     A part appears whole or not at all (store.Writer: a renamed
//     temporary file, or a completed upload).
//   - After each part the attempt rewrites its journal _attempt-ID.json:
//     the manifest it would commit now. Nothing reads journals but a
//     resume (OpenCacheForAppend) and distill inspect.
//   - Close commits: it writes manifest.json create-only (link(2)
//     locally, If-None-Match: * on S3). The first attempt to commit wins;
//     a later one finds the manifest, removes its own unnamed parts and
//     journal and fails with a *CommittedError. Readers (Open) read only
//     manifest.json, so they see a whole committed shard or none, never
//     a mix of attempts; files a manifest does not name are leftovers,
//     listed by Verify and removed by GC.
//
// A local directory is also locked (package internal/lock: flock on the
// directory itself, no lock file) from CreateCache or OpenCacheForAppend
// until Close or Discard, and a second local writer fails at once with an
// error wrapping ErrLocked. A CacheWriter is not safe for concurrent use.
type CacheWriter struct {
	d        *store.Dir
	m        Manifest
	cfg      Config
	opts     WriterOptions
	attempt  string
	from     string // the attempt OpenCacheForAppend resumed, "" if none
	part     *PartWriter
	dropped  []string
	closed   bool
	unlock   func() error
	created  bool     // by CreateCache: Discard may remove the directories it made
	madeDirs []string // local directories CreateCache created, deepest first
}

var ctxBG = context.Background()

// newAttemptID returns a random attempt id of 12 hex digits.
func newAttemptID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// journalName is the journal of attempt id.
func journalName(id string) string { return "_attempt-" + id + ".json" }

var (
	journalRE = regexp.MustCompile(`^_attempt-([0-9a-f]{12})\.json$`)
	// partNameRE matches part files: part-NNNNN-ID.ext since format 1.3,
	// part-NNNNN.ext before.
	partNameRE = regexp.MustCompile(`^part-([0-9]{5,9})(?:-([0-9a-f]{12}))?\.(arrow|parquet)$`)
)

// lockDir locks a local cache directory for a CacheWriter (a no-op for a
// remote one).
func lockDir(d *store.Dir) (func() error, error) {
	release, err := d.Lock()
	if errors.Is(err, lock.ErrLocked) {
		return nil, fmt.Errorf("formats: %s is being written by another process (%w)", d, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("formats: lock cache: %w", err)
	}
	return release, nil
}

// CreateCache starts a new attempt at the cache directory dir (a path or
// a store location; a local directory and its parents are created). It
// sets the fields of m that describe the stored data from cfg and opts:
// Version, Classes, Settings.TopK, Dtype, HasLabel, Hidden, KeepInput,
// Inputs, Format, Compression and RowsPerBatch; it sets Rows to 0,
// ScoreKind "" to ScoreLogits, ShardCount 0 to 1 and a zero Created to
// the current time. It writes the attempt's journal with no parts. It
// fails if dir holds a committed manifest (ErrCommitted), or any part
// file or journal (an earlier or concurrent attempt: resume it with
// OpenCacheForAppend), and with an error wrapping ErrLocked if another
// local CacheWriter holds dir.
func CreateCache(dir string, m Manifest, cfg Config, opts *WriterOptions) (_ *CacheWriter, err error) {
	cfg, err = cfg.normalize()
	if err != nil {
		return nil, err
	}
	o, err := opts.resolve(cfg)
	if err != nil {
		return nil, err
	}
	m.fill(cfg, o)
	if err := m.validate(); err != nil {
		return nil, err
	}
	d, err := store.OpenDir(ctxBG, dir)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	made, err := d.MkdirAll()
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	unlock, err := lockDir(d)
	if err != nil {
		// Not removing made: the holder may be writing in it.
		return nil, err
	}
	c := &CacheWriter{d: d, m: m, cfg: cfg, opts: o, unlock: unlock, created: true, madeDirs: made, attempt: newAttemptID()}
	defer func() {
		if err != nil {
			d.RemoveEmptyDirs(made)
			unlock()
		}
	}()
	entries, err := d.List(ctxBG)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	for _, e := range entries {
		switch {
		case e.Name == ManifestName:
			return nil, fmt.Errorf("%w: create cache %s: it holds a committed %s", ErrCommitted, d, ManifestName)
		case isPartName(e.Name) || journalRE.MatchString(e.Name):
			return nil, fmt.Errorf("formats: create cache %s: %s of an earlier or running attempt exists (resume with OpenCacheForAppend)", d, e.Name)
		}
	}
	if err := c.writeJournal(); err != nil {
		return nil, err
	}
	return c, nil
}

// fill sets the fields CreateCache derives, from a normalized cfg and
// resolved options.
func (m *Manifest) fill(cfg Config, o WriterOptions) {
	m.Version = Version
	m.Classes = cfg.Classes
	s := &m.Settings
	s.TopK, s.Dtype, s.HasLabel, s.Positions, s.TopKLogProbs = cfg.TopK, cfg.ScoreDtype, cfg.HasLabel, cfg.Positions, cfg.TopKLogProbs
	s.Samples, s.SampleTemperature, s.SampleSeed = cfg.Samples, cfg.SampleTemperature, cfg.SampleSeed
	s.Hidden, s.Inputs, s.KeepInput = cfg.Hidden, cfg.Inputs, len(cfg.Inputs) > 0
	s.Format, s.Compression, s.RowsPerBatch = o.Format, o.Compression, o.RowsPerBatch
	if s.ShardCount == 0 {
		s.ShardCount = 1
	}
	if m.ScoreKind == "" {
		m.ScoreKind = ScoreLogits
	}
	if m.Created.IsZero() {
		m.Created = nowMillis()
	}
	m.Rows, m.Parts = 0, nil
}

// Attempt is an uncommitted attempt at a cache directory: its journal.
type Attempt struct {
	ID       string
	Manifest Manifest  // what the attempt would commit now
	Modified time.Time // when the journal was last written
	Err      error     // the journal could not be read or parsed
}

// Attempts lists the attempts whose journals are in the cache directory
// dir, by id.
func Attempts(dir string) ([]Attempt, error) {
	d, err := store.OpenDir(ctxBG, dir)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	entries, err := d.List(ctxBG)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	return readAttempts(d, entries), nil
}

func readAttempts(d *store.Dir, entries []store.Entry) []Attempt {
	var out []Attempt
	for _, e := range entries {
		sub := journalRE.FindStringSubmatch(e.Name)
		if sub == nil {
			continue
		}
		a := Attempt{ID: sub[1], Modified: e.ModTime}
		data, err := d.ReadFile(ctxBG, e.Name, maxManifestBytes)
		if err == nil {
			a.Manifest, err = ParseManifest(data)
		}
		if err != nil {
			a.Err = fmt.Errorf("%s: %w", d.Path(e.Name), err)
		}
		out = append(out, a)
	}
	return out
}

// OpenCacheForAppend starts a new attempt that continues the furthest
// uncommitted attempt in the cache directory dir, for resuming an
// interrupted extraction: of the journals there it takes the one with the
// most rows and keeps the longest prefix of its parts that exist with the
// size (locally also the sha256) it records, plus the attempt's next part
// if that exists unlisted and decodes completely (a crash between a
// part's upload and the journal update leaves exactly that). The new
// attempt's parts continue the numbering; its journal lists the kept
// parts. NextRow says how many rows the cache holds.
//
// A local directory is locked, so nothing else writes it: OpenCacheForAppend
// also removes the files the new attempt does not need (the other
// journals, once its own is written; unkept part files, which Dropped
// lists; temporary files). A remote directory may have a concurrent
// writer, so there nothing is removed; Close removes the journal it
// resumed and GC the rest.
//
// It fails with an error wrapping ErrCommitted if dir holds a committed
// manifest, and with one wrapping fs.ErrNotExist if it holds no journal.
// Non-zero Format, Compression or RowsPerBatch in opts must match the
// journal; Allocator and Metadata are used for new parts. Like
// CreateCache it locks a local dir until Close.
func OpenCacheForAppend(dir string, opts *WriterOptions) (_ *CacheWriter, err error) {
	d, err := store.OpenDir(ctxBG, dir)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	unlock, err := lockDir(d)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	entries, err := d.List(ctxBG)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	var best *Attempt
	for _, e := range entries {
		if e.Name == ManifestName {
			return nil, fmt.Errorf("%w: %s holds a committed %s; nothing to append", ErrCommitted, d, ManifestName)
		}
	}
	attempts := readAttempts(d, entries)
	for i, a := range attempts {
		if a.Err == nil && (best == nil || a.Manifest.Rows > best.Manifest.Rows ||
			a.Manifest.Rows == best.Manifest.Rows && a.Modified.After(best.Modified)) {
			best = &attempts[i]
		}
	}
	if best == nil {
		for _, a := range attempts {
			if a.Err != nil {
				return nil, a.Err
			}
		}
		return nil, fmt.Errorf("formats: %s: no attempt to resume: %w", d, fs.ErrNotExist)
	}
	m := best.Manifest
	cfg, err := m.Config().normalize()
	if err != nil {
		return nil, err
	}
	var o WriterOptions
	if opts != nil {
		o = *opts
	}
	s := m.Settings
	if (o.Format != "" && o.Format != s.Format) || (o.Compression != "" && o.Compression != s.Compression) ||
		(o.RowsPerBatch != 0 && o.RowsPerBatch != s.RowsPerBatch) {
		return nil, fmt.Errorf("%w: append to %s: options %s/%s/%d rows per batch differ from the cache's %s/%s/%d",
			ErrSchema, d, o.Format, o.Compression, o.RowsPerBatch, s.Format, s.Compression, s.RowsPerBatch)
	}
	o.Format, o.Compression, o.RowsPerBatch = s.Format, s.Compression, s.RowsPerBatch
	if o, err = o.resolve(cfg); err != nil {
		return nil, err
	}
	c := &CacheWriter{d: d, m: m, cfg: cfg, opts: o, unlock: unlock, attempt: newAttemptID(), from: best.ID}
	if err := c.recover(entries); err != nil {
		return nil, err
	}
	if err := c.writeJournal(); err != nil {
		return nil, err
	}
	if !d.Remote() {
		// The new journal holds all the kept progress: the others can go
		// (after it is written, so a crash here loses nothing).
		for _, e := range entries {
			if journalRE.MatchString(e.Name) {
				if err := d.Remove(ctxBG, e.Name); err != nil {
					return nil, fmt.Errorf("formats: remove stale journal: %w", err)
				}
			}
		}
	}
	return c, nil
}

// recover implements the checks and clean-up of OpenCacheForAppend.
func (c *CacheWriter) recover(entries []store.Entry) error {
	sizes := map[string]int64{}
	for _, e := range entries {
		sizes[e.Name] = e.Size
	}
	keep := len(c.m.Parts)
	for i, p := range c.m.Parts {
		size, ok := sizes[p.File]
		if !ok || size != p.Bytes {
			keep = i
			break
		}
		if !c.d.Remote() {
			if err := checkPartFile(c.d, p); err != nil {
				keep = i
				break
			}
		}
	}
	c.m.Parts = c.m.Parts[:keep:keep]
	c.m.Rows = 0
	if keep > 0 {
		last := c.m.Parts[keep-1]
		c.m.Rows = last.FirstRow + last.Rows
	}
	next := partFileName(keep, c.from, c.opts.Format)
	if _, ok := sizes[next]; ok {
		if info, err := c.adopt(next); err == nil {
			c.m.Parts = append(c.m.Parts, info)
			c.m.Rows += info.Rows
		}
	}
	if c.d.Remote() {
		return nil
	}
	listed := make(map[string]bool, len(c.m.Parts))
	for _, p := range c.m.Parts {
		listed[p.File] = true
	}
	for _, e := range entries {
		name := e.Name
		switch {
		case isTempName(name):
			if err := c.d.Remove(ctxBG, name); err != nil {
				return fmt.Errorf("formats: remove stray file: %w", err)
			}
		case isPartName(name) && !listed[name]:
			if err := c.d.Remove(ctxBG, name); err != nil {
				return fmt.Errorf("formats: remove damaged part: %w", err)
			}
			c.dropped = append(c.dropped, name)
		}
	}
	return nil
}

// adopt checks an unlisted part file completely and returns its PartInfo.
func (c *CacheWriter) adopt(name string) (PartInfo, error) {
	info := PartInfo{File: name, FirstRow: c.m.Rows}
	sum, size, err := hashFile(c.d, name)
	if err != nil {
		return info, err
	}
	info.SHA256, info.Bytes = sum, size
	r, err := OpenReader(c.d.Path(name), nil)
	if err != nil {
		return info, err
	}
	defer r.Close()
	if err := c.checkPartReader(r); err != nil {
		return info, err
	}
	var b Batch
	for i := 0; i < r.NumBatches(); i++ {
		if err := r.ReadBatch(i, &b); err != nil {
			return info, err
		}
		if i < r.NumBatches()-1 && b.Len() != c.m.Settings.RowsPerBatch {
			return info, corrupt(r.path, i, fmt.Errorf("batch has %d rows, want %d", b.Len(), c.m.Settings.RowsPerBatch))
		}
		info.Rows += int64(b.Len())
	}
	if info.Rows == 0 {
		return info, corrupt(r.path, -1, errors.New("empty part"))
	}
	return info, nil
}

// checkPartReader checks that an opened part belongs to the cache.
func (c *CacheWriter) checkPartReader(r *Reader) error {
	return checkPartOf(r, &c.m, c.cfg)
}

// checkPartOf checks a part's schema and embedded manifest against the
// manifest of its directory.
func checkPartOf(r *Reader, m *Manifest, cfg Config) error {
	if !reflect.DeepEqual(r.Config(), cfg) {
		return fmt.Errorf("%w: %s: part stores %s, manifest says %s", ErrSchema, r.path, configString(r.Config()), configString(cfg))
	}
	pm, ok := r.Manifest()
	if !ok {
		return fmt.Errorf("%w: %s: part has no %s metadata", ErrSchema, r.path, MetaManifest)
	}
	want := m.partCopy()
	if pm.Digest() != want.Digest() {
		return fmt.Errorf("%w: %s: embedded manifest differs from %s", ErrSchema, r.path, ManifestName)
	}
	return nil
}

func configString(c Config) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Dir returns the cache directory's location.
func (c *CacheWriter) Dir() string { return c.d.String() }

// Attempt returns the writer's attempt id.
func (c *CacheWriter) Attempt() string { return c.attempt }

// Resumed returns the id of the attempt OpenCacheForAppend continued.
func (c *CacheWriter) Resumed() string { return c.from }

// Manifest returns a copy of the current manifest.
func (c *CacheWriter) Manifest() Manifest {
	m := c.m
	m.Parts = append([]PartInfo(nil), c.m.Parts...)
	return m
}

// Config returns the normalized Config of the cache.
func (c *CacheWriter) Config() Config { return c.cfg }

// NextRow returns the number of rows the cache holds, which is the position
// of the next row to produce within this shard.
func (c *CacheWriter) NextRow() int64 { return c.m.Rows }

// Dropped lists the part files OpenCacheForAppend deleted because they did
// not verify or were not listed in the journal it resumed.
func (c *CacheWriter) Dropped() []string { return append([]string(nil), c.dropped...) }

// WritePart writes batches as the next part file and records it in the
// journal. It is NewPart, Write for each batch, Commit. At least one row
// is required.
func (c *CacheWriter) WritePart(batches ...*Batch) (PartInfo, error) {
	p, err := c.NewPart()
	if err != nil {
		return PartInfo{}, err
	}
	for _, b := range batches {
		if err := p.Write(b); err != nil {
			p.Abort()
			return PartInfo{}, err
		}
	}
	return p.Commit()
}

// PartWriter streams rows into the next part file of a cache: to a
// hidden temporary file locally, as a multipart upload remotely. Nothing
// is visible in the directory until Commit.
type PartWriter struct {
	c    *CacheWriter
	name string
	sw   *store.Writer
	w    *Writer
	done bool
}

// NewPart starts the next part file. Only one part may be open at a time.
func (c *CacheWriter) NewPart() (*PartWriter, error) {
	if c.closed {
		return nil, errors.New("formats: CacheWriter is closed")
	}
	if c.part != nil {
		return nil, errors.New("formats: a part is already open; Commit or Abort it first")
	}
	name := partFileName(len(c.m.Parts), c.attempt, c.opts.Format)
	sw, err := c.d.Create(ctxBG, name)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	p := &PartWriter{c: c, name: name, sw: sw}
	o := c.opts
	o.Metadata = make(map[string]string, len(c.opts.Metadata)+2)
	for k, v := range c.opts.Metadata {
		o.Metadata[k] = v
	}
	pc := c.m.partCopy()
	mj, err := json.Marshal(&pc)
	if err != nil {
		p.Abort()
		return nil, fmt.Errorf("formats: %w", err)
	}
	o.Metadata[MetaManifest] = string(mj)
	if c.m.Teacher.SHA256 != "" {
		o.Metadata[MetaTeacher] = c.m.Teacher.SHA256
	}
	if p.w, err = NewWriter(sw, c.cfg, &o); err != nil {
		p.Abort()
		return nil, err
	}
	c.part = p
	return p, nil
}

// Write appends rows to the part (see Writer.Write).
func (p *PartWriter) Write(b *Batch) error {
	if p.done {
		return errors.New("formats: write to finished part")
	}
	return p.w.Write(b)
}

// Rows returns the number of rows written to the part so far.
func (p *PartWriter) Rows() int64 { return p.w.Rows() }

// Commit finishes the part file, puts it in place and rewrites the
// journal. On error the part is abandoned and the cache is as before,
// except if the journal could not be written: then the part exists
// unlisted and OpenCacheForAppend will adopt it.
func (p *PartWriter) Commit() (PartInfo, error) {
	if p.done {
		return PartInfo{}, errors.New("formats: part already finished")
	}
	c := p.c
	rows := p.w.Rows()
	if rows == 0 {
		p.Abort()
		return PartInfo{}, errors.New("formats: part has no rows")
	}
	if err := p.w.Close(); err != nil {
		p.Abort()
		return PartInfo{}, err
	}
	p.done = true
	c.part = nil
	wr, err := p.sw.Commit()
	if err != nil {
		return PartInfo{}, fmt.Errorf("formats: commit part %s: %w", p.name, err)
	}
	info := PartInfo{File: p.name, FirstRow: c.m.Rows, Rows: rows, Bytes: wr.Size, SHA256: wr.SHA256}
	c.m.Parts = append(c.m.Parts, info)
	c.m.Rows += rows
	if err := c.writeJournal(); err != nil {
		c.m.Parts = c.m.Parts[:len(c.m.Parts)-1]
		c.m.Rows -= rows
		return PartInfo{}, err
	}
	return info, nil
}

// Abort abandons the part: nothing of it stays.
func (p *PartWriter) Abort() error {
	if p.done {
		return nil
	}
	p.done = true
	p.c.part = nil
	if p.w != nil {
		p.w.Close()
	}
	if err := p.sw.Abort(); err != nil {
		return fmt.Errorf("formats: %w", err)
	}
	return nil
}

// Close commits the cache: it aborts an open part, if any, writes
// manifest.json create-only, removes the attempt's journal and the journal
// it resumed, and unlocks the directory. If another attempt committed
// first, Close removes this attempt's parts that the committed manifest
// does not name, and its journal, and returns a *CommittedError. If the
// manifest cannot be written for another reason the journal and parts
// stay, for a resume. Close after Close or Discard does nothing.
func (c *CacheWriter) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.part != nil {
		err = c.part.Abort()
	}
	defer c.unlock()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(&c.m, "", "  ")
	if err != nil {
		return fmt.Errorf("formats: %w", err)
	}
	_, err = c.d.WriteFile(ctxBG, ManifestName, append(data, '\n'), true)
	if errors.Is(err, store.ErrExist) {
		return c.lost()
	}
	if err != nil {
		return fmt.Errorf("formats: commit %s: %w", c.d.Path(ManifestName), err)
	}
	// Committed. The journals are now stale; removing them is tidiness
	// (a failure leaves a leftover for GC, not an error).
	c.d.Remove(ctxBG, journalName(c.attempt))
	if c.from != "" {
		c.d.Remove(ctxBG, journalName(c.from))
	}
	return nil
}

// lost cleans up after another attempt's commit won.
func (c *CacheWriter) lost() error {
	won, err := readManifestIn(c.d)
	if err != nil {
		return fmt.Errorf("formats: %s was committed by another attempt, and its manifest cannot be read: %w", c.d, err)
	}
	named := map[string]bool{}
	for _, p := range won.Parts {
		named[p.File] = true
	}
	for _, p := range c.m.Parts {
		if !named[p.File] && strings.Contains(p.File, "-"+c.attempt+".") {
			c.d.Remove(ctxBG, p.File)
		}
	}
	c.d.Remove(ctxBG, journalName(c.attempt))
	return &CommittedError{Dir: c.d.String(), Manifest: won}
}

// Discard is Close for a writer whose run failed or was interrupted: it
// commits nothing. The journal and committed parts stay for a resume;
// but a writer from CreateCache that committed no part also removes its
// journal and the local directories CreateCache created, if empty, so the
// failed run leaves nothing behind. Discard after Close or Discard does
// nothing.
func (c *CacheWriter) Discard() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.part != nil {
		err = c.part.Abort()
	}
	if c.created && len(c.m.Parts) == 0 {
		if rerr := c.d.Remove(ctxBG, journalName(c.attempt)); rerr != nil && err == nil {
			err = fmt.Errorf("formats: discard cache: %w", rerr)
		}
		c.d.RemoveEmptyDirs(c.madeDirs)
	}
	if uerr := c.unlock(); err == nil && uerr != nil {
		err = fmt.Errorf("formats: unlock cache: %w", uerr)
	}
	return err
}

// partFileName is the name of part i of attempt id.
func partFileName(i int, id string, f Format) string {
	if id == "" {
		return fmt.Sprintf("part-%05d%s", i, f.Ext())
	}
	return fmt.Sprintf("part-%05d-%s%s", i, id, f.Ext())
}

// writeJournal writes the attempt's journal (replacing it).
func (c *CacheWriter) writeJournal() error {
	data, err := json.MarshalIndent(&c.m, "", "  ")
	if err != nil {
		return fmt.Errorf("formats: %w", err)
	}
	if _, err := c.d.WriteFile(ctxBG, journalName(c.attempt), append(data, '\n'), false); err != nil {
		return fmt.Errorf("formats: write journal: %w", err)
	}
	return nil
}

// isPartName reports whether name is a part file name of either format.
func isPartName(name string) bool { return partNameRE.MatchString(name) }

// isTempName reports whether name is a temporary file of a local writer:
// atomicfile names the temporary file of NAME .NAME.tmp-RANDOM.
func isTempName(name string) bool {
	return (strings.HasPrefix(name, ".part-") || strings.HasPrefix(name, "."+ManifestName) || strings.HasPrefix(name, "._attempt-")) &&
		strings.Contains(name, ".tmp-")
}

// hashFile returns the hex sha256 and size of the file name in d.
func hashFile(d *store.Dir, name string) (string, int64, error) {
	f, err := d.Open(ctxBG, name)
	if err != nil {
		return "", 0, fmt.Errorf("formats: %w", err)
	}
	defer f.Close()
	return hashOpen(f)
}

// hashOpen reads the opened file f to its end through sha256.
func hashOpen(f *store.File) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("formats: read %s: %w", f.Name(), err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// checkPartFile checks a part file's size and sha256 against its PartInfo,
// opening it once (one HEAD and one GET on object storage).
func checkPartFile(d *store.Dir, p PartInfo) error {
	path := d.Path(p.File)
	f, err := d.Open(ctxBG, p.File)
	if err != nil {
		return corrupt(path, -1, err)
	}
	defer f.Close()
	if f.Size() != p.Bytes {
		return corrupt(path, -1, fmt.Errorf("file has %d bytes, manifest says %d", f.Size(), p.Bytes))
	}
	sum, n, err := hashOpen(f)
	if err != nil {
		return corrupt(path, -1, err)
	}
	if n != p.Bytes {
		return corrupt(path, -1, fmt.Errorf("read %d bytes, manifest says %d", n, p.Bytes))
	}
	if sum != p.SHA256 {
		return corrupt(path, -1, fmt.Errorf("sha256 %s, manifest says %s", sum, p.SHA256))
	}
	return nil
}

// Leftover is a file in a cache directory that its committed manifest
// does not name: a part or journal of an attempt that lost, failed or was
// superseded, or a temporary file of a crashed local writer.
type Leftover struct {
	Dir  string // the cache directory (shard)
	Name string
	Size int64
}

// leftovers lists the files of d that manifest m does not name and that
// a writer of the protocol made (other files are the user's and are left
// alone).
func leftovers(d *store.Dir, m Manifest, entries []store.Entry) []Leftover {
	named := map[string]bool{ManifestName: true}
	for _, p := range m.Parts {
		named[p.File] = true
	}
	var out []Leftover
	for _, e := range entries {
		if e.IsDir || named[e.Name] {
			continue
		}
		if isPartName(e.Name) || journalRE.MatchString(e.Name) || isTempName(e.Name) {
			out = append(out, Leftover{Dir: d.String(), Name: e.Name, Size: e.Size})
		}
	}
	slices.SortFunc(out, func(a, b Leftover) int { return strings.Compare(a.Name, b.Name) })
	return out
}
