package report

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/problem"
)

// Recorder holds the agent's report while it runs. The agent's stages update
// it and the control loop flushes it to disk; all methods are safe for
// concurrent use.
type Recorder struct {
	now func() time.Time

	flushMu sync.Mutex // keeps flushes in order: the newest snapshot lands last

	mu sync.Mutex
	r  NodeReport
	// problems holds each source's current problems, stamped with when
	// they were first found; r.Problems is the union of the visible ones.
	problems map[string][]problem.Problem
}

// NewRecorder starts from base (PID, Version and identity as known at start;
// its Phase is kept as is) and stamps times with now; nil now means time.Now.
func NewRecorder(base NodeReport, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	base = base.clone()
	base.Transitions = lastN(base.Transitions, MaxHistory)
	base.Decisions = lastN(base.Decisions, MaxHistory)
	return &Recorder{now: now, r: base}
}

// stamp is the current time as stored in the report: UTC, no monotonic
// reading (it would not survive JSON anyway).
func (rec *Recorder) stamp() time.Time { return rec.now().UTC().Round(0) }

// SetPhase sets the phase and its message (the STATUS= line). A change of
// phase is recorded as a transition; a new message within the same phase
// (progress such as "catching up 71%") only replaces Message.
func (rec *Recorder) SetPhase(phase Phase, msg string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.r.Message = msg
	if phase == rec.r.Phase && len(rec.r.Transitions) > 0 {
		return
	}
	rec.r.Phase = phase
	rec.r.Transitions = lastN(append(rec.r.Transitions, Transition{At: rec.stamp(), Phase: phase, Message: msg}), MaxHistory)
}

// SetError records the most recent error; nil clears it.
func (rec *Recorder) SetError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.r.LastError = msg
}

// AddDecision records a membership decision and why it was taken.
func (rec *Recorder) AddDecision(action Action, reason string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.r.Decisions = lastN(append(rec.r.Decisions, Decision{At: rec.stamp(), Action: action, Reason: reason}), MaxHistory)
	if rec.r.DecisionCounts == nil {
		rec.r.DecisionCounts = map[Action]uint64{}
	}
	rec.r.DecisionCounts[action]++
}

// SetProblems replaces the problems source found (nil: none now). Each part
// of the agent owns one source ("health", "metrics", "backup", …) and sets
// its whole current list after each check, so a problem disappears from the
// report as soon as its check no longer finds it. A problem found again
// (same code and subject) keeps the time it was first found (Since); one
// whose kind has a VisibleAfter is published only once it has lasted that
// long.
func (rec *Recorder) SetProblems(source string, ps []problem.Problem) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.problems == nil {
		rec.problems = map[string][]problem.Problem{}
	}
	now := rec.stamp()
	prev := rec.problems[source]
	next := make([]problem.Problem, 0, len(ps))
	for _, p := range ps {
		p.Since = now
		if i := slices.IndexFunc(prev, func(q problem.Problem) bool { return q.Code == p.Code && q.Subject == p.Subject }); i >= 0 {
			p.Since = prev[i].Since
		}
		next = append(next, p)
	}
	if len(next) == 0 {
		delete(rec.problems, source)
	} else {
		rec.problems[source] = next
	}
	var all []problem.Problem
	for _, src := range slices.Sorted(maps.Keys(rec.problems)) {
		for _, p := range rec.problems[src] {
			if now.Sub(p.Since) >= p.VisibleAfter() {
				all = append(all, p)
			}
		}
	}
	problem.Sort(all)
	rec.r.Problems = all
}

// Update changes the report under the lock, for fields without a setter
// (identity, URLs, endpoints, certificates, Ready). fn must not keep r or
// call the Recorder.
func (rec *Recorder) Update(fn func(r *NodeReport)) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	fn(&rec.r)
	rec.r.Transitions = lastN(rec.r.Transitions, MaxHistory)
	rec.r.Decisions = lastN(rec.r.Decisions, MaxHistory)
}

// Snapshot returns a copy of the report that later updates do not change.
func (rec *Recorder) Snapshot() NodeReport {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.r.clone()
}

// Flush stamps UpdatedAt and writes the report to path (see Write). Call it
// on every change and on every control-loop tick, so a reader can tell a hung
// agent from a live one by UpdatedAt.
func (rec *Recorder) Flush(path string) error {
	rec.flushMu.Lock()
	defer rec.flushMu.Unlock()
	rec.mu.Lock()
	rec.r.UpdatedAt = rec.stamp()
	snap := rec.r.clone()
	rec.mu.Unlock()
	return Write(path, snap)
}
