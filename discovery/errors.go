package discovery

import (
	"errors"
	"fmt"
)

// Errors a caller can test with errors.Is to tell configuration problems,
// which retrying cannot fix, from the rest.
var (
	// ErrNoSize: the token's registry has no size key; the token was never
	// created (or was mistyped).
	ErrNoSize = errors.New("discovery token has no size")
	// ErrBadSize: the size key holds something other than a positive number.
	ErrBadSize = errors.New("discovery token has a bad size")
	// ErrConflict: two nodes claim one name, or one peer URL, in a registry
	// or a static list.
	ErrConflict = errors.New("conflicting discovery registrations")
	// ErrNotListed: a static member list does not contain this node.
	ErrNotListed = errors.New("node not in static member list")
)

// detailedError carries a full, actionable message and matches a sentinel.
type detailedError struct {
	msg  string
	kind error
}

func (e *detailedError) Error() string        { return e.msg }
func (e *detailedError) Is(target error) bool { return target == e.kind }

func conflictf(format string, args ...any) error {
	return &detailedError{msg: fmt.Sprintf(format, args...), kind: ErrConflict}
}

// isSizeError reports a missing or bad size key.
func isSizeError(err error) bool { return errors.Is(err, ErrNoSize) || errors.Is(err, ErrBadSize) }
