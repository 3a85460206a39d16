// Package refusal is the error of an operator command the agent refuses on
// purpose, with nothing changed: a recovery while a quorum answers, a leave
// that would cost the quorum, freeing a reboot slot whose holder is still
// rebooting. The command line exits 3 on it ("unhealthy or refused",
// docs/cli/exit-codes.md); any other error is a failure (exit 1).
package refusal

import (
	"errors"
	"fmt"
	"strings"
)

// prefix starts every refusal's message.
const prefix = "refused: "

// Error is a refusal; its message is "refused: " and the reason.
type Error struct {
	Reason error
}

func (e *Error) Error() string { return prefix + e.Reason.Error() }
func (e *Error) Unwrap() error { return e.Reason }

// Errorf is a refusal for the reason fmt.Errorf(format, args...) gives.
func Errorf(format string, args ...any) error {
	return &Error{Reason: fmt.Errorf(format, args...)}
}

// Is reports whether err is, or wraps, a refusal.
func Is(err error) bool {
	var r *Error
	return errors.As(err, &r)
}

// FromMessage is the refusal whose message was msg (kept as text, e.g. in
// the recovery request file): the same message, typed again.
func FromMessage(msg string) error {
	return &Error{Reason: errors.New(strings.TrimPrefix(msg, prefix))}
}
