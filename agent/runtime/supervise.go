package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// EventKind names a supervision event.
type EventKind string

// Events reported through SuperviseOptions.OnEvent.
const (
	// EventEnsured: Ensure succeeded; Event.Action says how.
	EventEnsured EventKind = "ensured"
	// EventEnsureFailed: Ensure failed (Event.Err); retried after Event.Backoff.
	EventEnsureFailed EventKind = "ensure-failed"
	// EventExited: the instance exited (Event.Exit); restarted after Event.Backoff.
	EventExited EventKind = "exited"
	// EventCrashLoop: Event.Restarts restarts within the crash-loop window. It is
	// sent on every further restart until the member stays up.
	EventCrashLoop EventKind = "crash-loop"
	// EventStable: the instance has stayed up for StableAfter; the backoff is
	// reset and any crash loop is over.
	EventStable EventKind = "stable"
)

// Event is one thing Supervise saw, for the agent's STATUS line and status.
type Event struct {
	Kind     EventKind
	Time     time.Time
	Runtime  string
	Action   Action        // EventEnsured
	Exit     ExitInfo      // EventExited
	Err      error         // EventEnsureFailed
	Backoff  time.Duration // delay before the next attempt
	Restarts int           // restarts within CrashLoopWindow
}

// String is a one-line description, e.g. "etcd (podman) exited with code 137; restarting in 2s".
func (e Event) String() string {
	switch e.Kind {
	case EventEnsured:
		return fmt.Sprintf("etcd (%s) %s", e.Runtime, e.Action)
	case EventEnsureFailed:
		return fmt.Sprintf("etcd (%s) could not be started: %v; retrying in %s", e.Runtime, e.Err, e.Backoff.Round(time.Millisecond))
	case EventExited:
		return fmt.Sprintf("etcd (%s) %s; restarting in %s", e.Runtime, e.Exit, e.Backoff.Round(time.Millisecond))
	case EventCrashLoop:
		return fmt.Sprintf("etcd (%s) is crash-looping: %d restarts; next in %s", e.Runtime, e.Restarts, e.Backoff.Round(time.Millisecond))
	case EventStable:
		return fmt.Sprintf("etcd (%s) running", e.Runtime)
	}
	return string(e.Kind)
}

// SuperviseOptions tune Supervise. Zero values mean the documented defaults.
type SuperviseOptions struct {
	Logger  *slog.Logger
	OnEvent func(Event) // called from Supervise's goroutine; must not block long
	// MinBackoff and MaxBackoff bound the jittered exponential restart delay
	// (defaults 1s and 30s).
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long an instance must stay up before the backoff
	// resets (default 1m).
	StableAfter time.Duration
	// CrashLoopRestarts restarts within CrashLoopWindow make a crash loop
	// (defaults 5 and 10m).
	CrashLoopRestarts int
	CrashLoopWindow   time.Duration
	// EnsureTimeout bounds one Ensure call, image pull included (default 5m).
	EnsureTimeout time.Duration
	// Spec, when set, is asked before every (re)start for the spec to run
	// (a rolling config change swaps it); zero: Supervise's spec.
	Spec func() etcdconf.Spec
	// Hold, when set, is asked before every (re)start; a non-empty answer
	// ends Supervise without starting etcd again (the member left the cluster).
	Hold func() string
}

func (o SuperviseOptions) withDefaults() SuperviseOptions {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnEvent == nil {
		o.OnEvent = func(Event) {}
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.StableAfter <= 0 {
		o.StableAfter = time.Minute
	}
	if o.CrashLoopRestarts <= 0 {
		o.CrashLoopRestarts = 5
	}
	if o.CrashLoopWindow <= 0 {
		o.CrashLoopWindow = 10 * time.Minute
	}
	if o.EnsureTimeout <= 0 {
		o.EnsureTimeout = 5 * time.Minute
	}
	return o
}

// Supervise keeps the member running with spec until ctx is done: it ensures
// the instance (adopting a running one), waits for it to exit, logs why, and
// ensures it again after a capped, jittered exponential backoff. Failures to
// start are retried the same way. Restarts that come too often are reported as
// EventCrashLoop, never hidden. When ctx is done Supervise returns nil and
// leaves the member running: an agent restart must not restart etcd.
func Supervise(ctx context.Context, rt Runtime, spec etcdconf.Spec, opts SuperviseOptions) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("supervise etcd: %w", err)
	}
	o := opts.withDefaults()
	s := &supervisor{rt: rt, spec: spec, o: o, bo: backoff.Backoff{Min: o.MinBackoff, Max: o.MaxBackoff}}
	for ctx.Err() == nil {
		if !s.runOnce(ctx) {
			break
		}
	}
	return nil
}

type supervisor struct {
	rt       Runtime
	spec     etcdconf.Spec
	o        SuperviseOptions
	bo       backoff.Backoff
	restarts []time.Time
}

func (s *supervisor) emit(e Event) {
	e.Time = time.Now()
	e.Runtime = s.rt.Name()
	s.o.OnEvent(e)
}

// runOnce ensures the member, waits for it to exit and sleeps the backoff. It
// returns false when ctx is done.
func (s *supervisor) runOnce(ctx context.Context) bool {
	log := s.o.Logger.With("runtime", s.rt.Name(), "member", s.spec.Name)
	if s.o.Hold != nil {
		if why := s.o.Hold(); why != "" {
			log.Warn("etcd supervision ends", "reason", why)
			return false
		}
	}
	ectx, cancel := context.WithTimeout(ctx, s.o.EnsureTimeout)
	spec := s.spec
	if s.o.Spec != nil {
		spec = s.o.Spec()
	}
	action, err := s.rt.Ensure(ectx, spec)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		d := s.bo.Next()
		log.Error("etcd could not be started", "err", err, "retry_in", d)
		s.emit(Event{Kind: EventEnsureFailed, Err: err, Backoff: d})
		return sleep(ctx, d)
	}
	started := time.Now()
	log.Info("etcd ensured", "action", string(action))
	s.emit(Event{Kind: EventEnsured, Action: action})

	exit, ok := s.wait(ctx, log)
	if !ok {
		return false
	}
	now := time.Now()
	if now.Sub(started) >= s.o.StableAfter {
		s.bo.Reset()
	}
	s.restarts = append(s.restarts, now)
	for len(s.restarts) > 0 && now.Sub(s.restarts[0]) > s.o.CrashLoopWindow {
		s.restarts = s.restarts[1:]
	}
	d := s.bo.Next()
	log.Warn("etcd exited", "reason", exit.String(), "uptime", now.Sub(started).Round(time.Millisecond), "restart_in", d)
	s.emit(Event{Kind: EventExited, Exit: exit, Backoff: d, Restarts: len(s.restarts)})
	if len(s.restarts) >= s.o.CrashLoopRestarts {
		log.Error("etcd is crash-looping", "restarts", len(s.restarts), "window", s.o.CrashLoopWindow, "last_exit", exit.String())
		s.emit(Event{Kind: EventCrashLoop, Exit: exit, Backoff: d, Restarts: len(s.restarts)})
	}
	return sleep(ctx, d)
}

// wait waits for the instance to exit, reporting EventStable once it has been
// up for StableAfter. It returns false when ctx is done.
func (s *supervisor) wait(ctx context.Context, log *slog.Logger) (ExitInfo, bool) {
	sctx, cancel := context.WithTimeout(ctx, s.o.StableAfter)
	exit, err := s.rt.Wait(sctx)
	cancel()
	if ctx.Err() != nil {
		return ExitInfo{}, false
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) && sctx.Err() != nil {
		s.bo.Reset()
		s.restarts = nil
		log.Info("etcd running stable", "after", s.o.StableAfter)
		s.emit(Event{Kind: EventStable})
		exit, err = s.rt.Wait(ctx)
		if ctx.Err() != nil {
			return ExitInfo{}, false
		}
	}
	if err != nil {
		// The runtime lost track of the instance (socket gone, instance
		// removed): count it as an exit; the next Ensure adopts it if it is
		// in fact still running.
		exit = ExitInfo{ExitCode: -1, Err: fmt.Errorf("wait for etcd: %w", err), At: time.Now()}
	}
	return exit, true
}

// sleep waits d or until ctx is done; it returns false when ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Cause is why etcd stopped or could not start, as far as the agent must
// act on it: etcd's error text is classified here, once.
type Cause string

const (
	// CauseOther: nothing the agent acts on (it restarts etcd with backoff).
	CauseOther Cause = ""
	// CauseInconsistentData: etcd's initial corruption check found the
	// local data inconsistent with its peers. A restart cannot fix it (and
	// an embedded etcd keeps its WAL locked after that failure); which side
	// is wrong needs a human.
	CauseInconsistentData Cause = "inconsistent-data"
)

// inconsistentDataText is etcd's message for CauseInconsistentData
// (server/etcdserver/corrupt.go).
const inconsistentDataText = "found data inconsistency with peers"

// Cause classifies the event's error.
func (e Event) Cause() Cause {
	for _, err := range []error{e.Err, e.Exit.Err} {
		if err != nil && strings.Contains(err.Error(), inconsistentDataText) {
			return CauseInconsistentData
		}
	}
	return CauseOther
}
