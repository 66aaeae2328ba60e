package formats

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/distill-ml/distill/internal/atomicfile"
	"github.com/distill-ml/distill/internal/lock"
)

// CacheWriter writes a cache directory: part files plus manifest.json.
// Each part appears whole or not at all (written to a hidden temporary
// file, synced, renamed, directory synced), and manifest.json is rewritten
// the same way after each part, so after a crash at any moment the
// directory holds a valid manifest listing complete parts; at most one
// complete part may be missing from it, which OpenCacheForAppend adopts.
// Only one CacheWriter may write a directory at a time: CreateCache and
// OpenCacheForAppend lock the directory (package internal/lock: flock on
// the directory itself, no lock file) until Close or Discard, and fail at
// once with an error wrapping ErrLocked while another CacheWriter, in this
// process or another, holds it. A CacheWriter is not safe for concurrent
// use.
type CacheWriter struct {
	dir      string
	m        Manifest
	cfg      Config
	opts     WriterOptions
	part     *PartWriter
	dropped  []string
	closed   bool
	unlock   func() error
	created  bool     // by CreateCache: Discard may remove the manifest
	madeDirs []string // directories CreateCache created, deepest first
}

// lockDir locks the cache directory dir for a CacheWriter.
func lockDir(dir string) (func() error, error) {
	release, err := lock.Dir(dir)
	if errors.Is(err, lock.ErrLocked) {
		return nil, fmt.Errorf("formats: %s is being written by another process (%w)", dir, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("formats: lock cache: %w", err)
	}
	return release, nil
}

// CreateCache creates the cache directory dir (and its parents) and writes
// a manifest with no parts. It sets the fields of m that describe the
// stored data from cfg and opts: Version, Classes, Settings.TopK, Dtype,
// HasLabel, Hidden, KeepInput, Inputs, Format, Compression and
// RowsPerBatch; it sets Rows to 0, ScoreKind "" to ScoreLogits,
// ShardCount 0 to 1 and a zero Created to the current time. It fails if dir
// already holds a manifest or part files, and with an error wrapping
// ErrLocked if another CacheWriter holds dir; the lock it takes is held
// until Close or Discard.
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
	made, err := atomicfile.MkdirAll(dir)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		// Not removing made: the holder may be writing in it.
		return nil, err
	}
	c := &CacheWriter{dir: dir, m: m, cfg: cfg, opts: o, unlock: unlock, created: true, madeDirs: made}
	defer func() {
		if err != nil {
			atomicfile.RemoveEmptyDirs(made)
			unlock()
		}
	}()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	for _, e := range entries {
		if e.Name() == ManifestName || isPartName(e.Name()) {
			return nil, fmt.Errorf("formats: create cache %s: %s already exists (resume with OpenCacheForAppend)", dir, e.Name())
		}
	}
	if err := c.writeManifest(); err != nil {
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
		m.Created = time.Now().UTC().Truncate(time.Millisecond)
	}
	m.Rows, m.Parts = 0, nil
}

// OpenCacheForAppend reopens the cache directory dir to add parts, for
// resuming an interrupted extraction. It reads the manifest and keeps the
// longest prefix of listed parts whose size and sha256 match it; the other
// listed parts, stray temporary files and unlisted part files are deleted,
// except that the unlisted part that would come next is kept (adopted) if
// it decodes completely and belongs to this cache (a crash between a
// part's rename and the manifest update leaves exactly that). Dropped lists
// the deleted part files. NextRow says how many rows the cache holds.
//
// Non-zero Format, Compression or RowsPerBatch in opts must match the
// manifest; Allocator and Metadata are used for new parts. Like
// CreateCache it locks dir until Close, and fails with an error wrapping
// ErrLocked, before reading or changing anything, if another CacheWriter
// holds it.
func OpenCacheForAppend(dir string, opts *WriterOptions) (_ *CacheWriter, err error) {
	unlock, err := lockDir(dir)
	if err != nil {
		if _, merr := ReadManifest(dir); merr != nil && !errors.Is(err, ErrLocked) {
			return nil, merr // no directory: report the missing manifest
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
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
			ErrSchema, dir, o.Format, o.Compression, o.RowsPerBatch, s.Format, s.Compression, s.RowsPerBatch)
	}
	o.Format, o.Compression, o.RowsPerBatch = s.Format, s.Compression, s.RowsPerBatch
	if o, err = o.resolve(cfg); err != nil {
		return nil, err
	}
	c := &CacheWriter{dir: dir, m: m, cfg: cfg, opts: o, unlock: unlock}
	if err := c.recover(); err != nil {
		return nil, err
	}
	return c, nil
}

// recover implements the clean-up of OpenCacheForAppend.
func (c *CacheWriter) recover() error {
	changed := false
	keep := len(c.m.Parts)
	for i, p := range c.m.Parts {
		if err := checkPartFile(filepath.Join(c.dir, p.File), p); err != nil {
			keep = i
			break
		}
	}
	if keep < len(c.m.Parts) {
		for _, p := range c.m.Parts[keep:] {
			if err := c.remove(p.File); err != nil {
				return err
			}
		}
		c.m.Parts = c.m.Parts[:keep:keep]
		c.m.Rows = 0
		if keep > 0 {
			last := c.m.Parts[keep-1]
			c.m.Rows = last.FirstRow + last.Rows
		}
		changed = true
	}
	listed := make(map[string]bool, len(c.m.Parts))
	for _, p := range c.m.Parts {
		listed[p.File] = true
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("formats: %w", err)
	}
	next := c.partName(len(c.m.Parts))
	for _, e := range entries {
		name := e.Name()
		switch {
		case isTempName(name):
			if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("formats: remove stray temporary file: %w", err)
			}
		case isPartName(name) && !listed[name]:
			if name == next {
				if info, err := c.adopt(name); err == nil {
					c.m.Parts = append(c.m.Parts, info)
					c.m.Rows += info.Rows
					changed = true
					continue
				}
			}
			if err := c.remove(name); err != nil {
				return err
			}
		}
	}
	if changed {
		return c.writeManifest()
	}
	return nil
}

func (c *CacheWriter) remove(name string) error {
	err := os.Remove(filepath.Join(c.dir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("formats: remove damaged part: %w", err)
	}
	if err == nil {
		c.dropped = append(c.dropped, name)
	}
	return nil
}

// adopt checks an unlisted part file completely and returns its PartInfo.
func (c *CacheWriter) adopt(name string) (PartInfo, error) {
	path := filepath.Join(c.dir, name)
	info := PartInfo{File: name, FirstRow: c.m.Rows}
	sum, size, err := hashFile(path)
	if err != nil {
		return info, err
	}
	info.SHA256, info.Bytes = sum, size
	r, err := OpenReader(path, nil)
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
			return info, corrupt(path, i, fmt.Errorf("batch has %d rows, want %d", b.Len(), c.m.Settings.RowsPerBatch))
		}
		info.Rows += int64(b.Len())
	}
	if info.Rows == 0 {
		return info, corrupt(path, -1, errors.New("empty part"))
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

// Dir returns the cache directory.
func (c *CacheWriter) Dir() string { return c.dir }

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
// not verify or were not listed in the manifest.
func (c *CacheWriter) Dropped() []string { return append([]string(nil), c.dropped...) }

// WritePart writes batches as the next part file and records it in the
// manifest. It is NewPart, Write for each batch, Commit. At least one row
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

// PartWriter streams rows into the next part file of a cache. Nothing is
// visible in the directory (except a hidden temporary file) until Commit.
type PartWriter struct {
	c    *CacheWriter
	name string
	tmp  *atomicfile.File
	bw   *bufio.Writer
	h    hash.Hash
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
	name := c.partName(len(c.m.Parts))
	// 0644: other users' tools (Spark, DuckDB) must read parts.
	f, err := atomicfile.Create(filepath.Join(c.dir, name), 0o644)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	p := &PartWriter{c: c, name: name, tmp: f, h: sha256.New()}
	p.bw = bufio.NewWriterSize(io.MultiWriter(f, p.h), 1<<20)
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
	if p.w, err = NewWriter(p.bw, c.cfg, &o); err != nil {
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

// Commit finishes the part file, renames it into place and rewrites the
// manifest. On error the part is abandoned (its temporary file removed) and
// the cache is as before, except if the manifest could not be written:
// then the part file exists unlisted and OpenCacheForAppend will adopt it.
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
	fail := func(err error) (PartInfo, error) {
		p.Abort()
		return PartInfo{}, err
	}
	if err := p.w.Close(); err != nil {
		return fail(err)
	}
	if err := p.bw.Flush(); err != nil {
		return fail(fmt.Errorf("formats: write part: %w", err))
	}
	st, err := p.tmp.Stat()
	if err != nil {
		return fail(fmt.Errorf("formats: %w", err))
	}
	// Commit syncs, closes and renames the part into place, then syncs the
	// directory; if only that sync fails, the part is in place but not
	// listed, which OpenCacheForAppend adopts.
	if err := p.tmp.Commit(); err != nil {
		return fail(fmt.Errorf("formats: commit part %s: %w", p.name, err))
	}
	p.done = true
	c.part = nil
	info := PartInfo{File: p.name, FirstRow: c.m.Rows, Rows: rows, Bytes: st.Size(), SHA256: hex.EncodeToString(p.h.Sum(nil))}
	c.m.Parts = append(c.m.Parts, info)
	c.m.Rows += rows
	if err := c.writeManifest(); err != nil {
		c.m.Parts = c.m.Parts[:len(c.m.Parts)-1]
		c.m.Rows -= rows
		return PartInfo{}, err
	}
	return info, nil
}

// Abort abandons the part and removes its temporary file.
func (p *PartWriter) Abort() error {
	if p.done {
		return nil
	}
	p.done = true
	p.c.part = nil
	if p.w != nil {
		p.w.Close()
	}
	if err := p.tmp.Abort(); err != nil {
		return fmt.Errorf("formats: %w", err)
	}
	return nil
}

// Close aborts an open part, if any, and unlocks the directory. The
// manifest is already up to date. Close after Close or Discard does
// nothing.
func (c *CacheWriter) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.part != nil {
		err = c.part.Abort()
	}
	if uerr := c.unlock(); err == nil && uerr != nil {
		err = fmt.Errorf("formats: unlock cache: %w", uerr)
	}
	return err
}

// Discard is Close for a writer whose run failed. If the writer came from
// CreateCache and committed no part, it also removes what CreateCache
// made, so that the failed run leaves no cache behind (a rerun would find
// one with no rows and refuse to create it): the manifest, and the
// directories CreateCache created, if they are empty. Otherwise (a writer
// from OpenCacheForAppend, or with committed parts, which a resume keeps)
// it is Close. Discard after Close or Discard does nothing.
func (c *CacheWriter) Discard() error {
	if c.closed {
		return nil
	}
	if !c.created || len(c.m.Parts) > 0 {
		return c.Close()
	}
	c.closed = true
	var err error
	if c.part != nil {
		err = c.part.Abort()
	}
	// Still locked: no other writer can be starting in dir meanwhile.
	if rerr := os.Remove(filepath.Join(c.dir, ManifestName)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = fmt.Errorf("formats: discard cache: %w", rerr)
	}
	atomicfile.RemoveEmptyDirs(c.madeDirs)
	if uerr := c.unlock(); err == nil && uerr != nil {
		err = fmt.Errorf("formats: unlock cache: %w", uerr)
	}
	return err
}

func (c *CacheWriter) partName(i int) string {
	return fmt.Sprintf("part-%05d%s", i, c.opts.Format.Ext())
}

// writeManifest writes manifest.json atomically.
func (c *CacheWriter) writeManifest() error {
	data, err := json.MarshalIndent(&c.m, "", "  ")
	if err != nil {
		return fmt.Errorf("formats: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(c.dir, ManifestName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("formats: write %s: %w", ManifestName, err)
	}
	return nil
}

// isPartName reports whether name is a part file name of either format.
func isPartName(name string) bool { return partNameRE.MatchString(name) }

// isTempName reports whether name is a temporary file of a CacheWriter:
// atomicfile names the temporary file of NAME .NAME.tmp-RANDOM.
func isTempName(name string) bool {
	return (strings.HasPrefix(name, ".part-") || strings.HasPrefix(name, "."+ManifestName)) && strings.Contains(name, ".tmp-")
}

// hashFile returns the hex sha256 and size of a file.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("formats: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("formats: read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// checkPartFile checks a part file's size and sha256 against its PartInfo.
func checkPartFile(path string, p PartInfo) error {
	st, err := os.Stat(path)
	if err != nil {
		return corrupt(path, -1, err)
	}
	if st.Size() != p.Bytes {
		return corrupt(path, -1, fmt.Errorf("file has %d bytes, manifest says %d", st.Size(), p.Bytes))
	}
	sum, _, err := hashFile(path)
	if err != nil {
		return corrupt(path, -1, err)
	}
	if sum != p.SHA256 {
		return corrupt(path, -1, fmt.Errorf("sha256 %s, manifest says %s", sum, p.SHA256))
	}
	return nil
}
