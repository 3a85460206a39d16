package report

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Alive reports whether the agent that wrote r is still running and still
// updating it: its PID exists and UpdatedAt is no older than maxAge at now.
// The reason says why, in words fit for the status screen.
//
// A PID owned by another user counts as existing (kill(pid, 0) gives EPERM),
// since status runs as the operator, not necessarily as the agent's user.
func (r NodeReport) Alive(now time.Time, maxAge time.Duration) (bool, string) {
	if r.PID <= 0 {
		return false, "report has no agent pid"
	}
	switch err := syscall.Kill(r.PID, 0); {
	case err == nil, errors.Is(err, syscall.EPERM):
	case errors.Is(err, syscall.ESRCH):
		return false, fmt.Sprintf("agent (pid %d) is not running", r.PID)
	default:
		return false, fmt.Sprintf("cannot check agent pid %d: %v", r.PID, err)
	}
	if r.UpdatedAt.IsZero() {
		return false, fmt.Sprintf("agent (pid %d) has never updated its report", r.PID)
	}
	age := now.Sub(r.UpdatedAt)
	if age > maxAge {
		return false, fmt.Sprintf("agent (pid %d) last updated its report %s ago (more than %s): it may be hung",
			r.PID, age.Round(time.Second), maxAge)
	}
	if age < 0 {
		age = 0
	}
	return true, fmt.Sprintf("agent (pid %d) running, report updated %s ago", r.PID, age.Round(time.Second))
}
