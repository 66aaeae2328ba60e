package eval

import (
	"errors"
	"fmt"
)

// ErrOption marks an error caused by an option the caller chose: an input
// column that does not exist, preprocessing for data that has none. The
// command line reports it as a usage error.
var ErrOption = errors.New("eval: bad option")

// optionError is an error message that matches ErrOption.
type optionError struct{ msg string }

func (e *optionError) Error() string        { return e.msg }
func (e *optionError) Is(target error) bool { return target == ErrOption }

// optionErrorf formats an error matching ErrOption; the message has no
// prefix, since it names the option itself.
func optionErrorf(format string, args ...any) error {
	return &optionError{msg: fmt.Sprintf(format, args...)}
}
