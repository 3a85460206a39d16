package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// permanentError marks an error that retrying cannot fix (bad token, bad
// size, conflicting registrations).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err: err} }

// retrier runs network steps until they succeed, fail permanently or ctx
// ends, telling the logger and the progress callback what it waits for.
type retrier struct {
	// What names the thing being waited on, e.g. "discovery at
	// https://10.0.0.9:2379"; messages read "<What> unreachable".
	What    string
	Backoff backoff.Backoff
	Logger  *slog.Logger
	// Report receives "<What> unreachable, retrying in 4s" before each wait.
	Report func(problem string)
}

// Do calls op until it returns nil or a permanent error, or ctx ends.
// Permanent errors are returned unwrapped of their marker.
func (r *retrier) Do(ctx context.Context, step string, op func(ctx context.Context) error) error {
	attempts := 0
	for {
		attempts++
		err := op(ctx)
		if err == nil {
			r.Backoff.Reset()
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %s unreachable, gave up after %d attempts: %w (last error: %v)", step, r.What, attempts, ctx.Err(), err)
		}
		wait := r.Backoff.Next()
		problem := fmt.Sprintf("%s unreachable, retrying in %s", r.What, wait.Round(100*time.Millisecond))
		r.Logger.Warn(problem, "step", step, "attempt", attempts, "err", err)
		if r.Report != nil {
			r.Report(problem)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %s unreachable, gave up after %d attempts: %w (last error: %v)", step, r.What, attempts, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// discard returns lg, or a logger that drops everything when lg is nil.
func discard(lg *slog.Logger) *slog.Logger {
	if lg == nil {
		return slog.New(slog.DiscardHandler)
	}
	return lg
}
