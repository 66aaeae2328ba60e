package lock

import (
	"errors"
	"sync"
)

// ErrLocked reports that another process (or another open file of this
// one) holds the lock. Errors of Dir and File wrap it and name the path.
var ErrLocked = errors.New("lock: held by another process")

// once makes a release function idempotent: the first call runs f, later
// calls return nil.
func once(f func() error) func() error {
	var o sync.Once
	return func() error {
		var err error
		o.Do(func() { err = f() })
		return err
	}
}
