package formats

import (
	"errors"
	"fmt"

	"github.com/distill-ml/distill/internal/lock"
)

// Sentinel errors. Errors returned by this package wrap one of them (tested
// with errors.Is) and add context: which file, which batch, which field.
var (
	// ErrVersion reports a manifest or part written with a format version this
	// package cannot read: a newer MAJOR version, or a malformed version string.
	ErrVersion = errors.New("formats: unsupported format version")

	// ErrSchema reports a schema that is not a valid cache schema, or two
	// schemas (or manifests) that should agree and do not.
	ErrSchema = errors.New("formats: schema mismatch")

	// ErrCorrupt reports bytes that do not decode, or decoded content that
	// contradicts the manifest (size, sha256, row count, values).
	ErrCorrupt = errors.New("formats: corrupt cache")

	// ErrIncomplete reports a sharded cache opened without all of its shards.
	ErrIncomplete = errors.New("formats: incomplete cache")

	// ErrTooLarge reports a batch whose decoded size exceeds
	// ReaderOptions.MaxBatchBytes; nothing was allocated for it.
	ErrTooLarge = errors.New("formats: batch too large")

	// ErrLocked reports a cache directory that another CacheWriter (of
	// this process or another) is writing. It is lock.ErrLocked (package
	// internal/lock), so errors.Is matches either.
	ErrLocked = lock.ErrLocked
)

// CorruptError records a decoding failure and where it happened. Err wraps
// the cause; errors.Is(err, ErrCorrupt) is true for every CorruptError.
type CorruptError struct {
	Path  string // part file, or "" for an unnamed reader
	Batch int    // record batch / row group index in the part; -1 for the file as a whole
	Err   error  // the cause
}

// Error implements error.
func (e *CorruptError) Error() string {
	where := e.Path
	if where == "" {
		where = "part"
	}
	if e.Batch >= 0 {
		where = fmt.Sprintf("%s batch %d", where, e.Batch)
	}
	return fmt.Sprintf("formats: corrupt %s: %v", where, e.Err)
}

// Unwrap returns the cause.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is reports that every CorruptError matches ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// corrupt builds a *CorruptError with a formatted cause. If the cause is
// already a CorruptError it is returned with the path filled in.
func corrupt(path string, batch int, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		if ce.Path == "" {
			ce.Path = path
		}
		return ce
	}
	return &CorruptError{Path: path, Batch: batch, Err: err}
}
