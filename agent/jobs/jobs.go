// Package jobs runs the agent's periodic jobs, each on its own goroutine and
// its own schedule, so a long round of one (a snapshot of a large database,
// a defragmentation, a rolling restart) never delays another: heartbeats,
// membership checks and certificate renewal go on meanwhile. The agent's
// loop only starts, stops and supervises them.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Start says from when on in a pass of the node's lifecycle a job runs.
type Start int

const (
	// FromMembership: from the membership stage on, while the node may
	// still wait for its cluster (a job that can end the pass meanwhile,
	// such as a recovery request).
	FromMembership Start = iota
	// FromEtcd: once the local etcd is started, before it is ready (jobs
	// that READY may depend on: a NOSPACE recovery, a quota raise,
	// certificate renewal).
	FromEtcd
	// FromReady: once the local member was ready in this pass.
	FromReady
)

func (s Start) String() string {
	switch s {
	case FromMembership:
		return "membership"
	case FromEtcd:
		return "etcd started"
	case FromReady:
		return "ready"
	}
	return fmt.Sprintf("Start(%d)", int(s))
}

// Job is one row of the agent's job table.
type Job struct {
	Name string
	// Every is the pause between the end of one round and the start of the
	// next; the first round runs one Every after the job starts.
	Every time.Duration
	Start Start
	// WhileLeaving lets the job run while `leave` removes this member.
	// Others skip their rounds then: etcd 3.7 panics on a Status call
	// that arrives between a member's removal and its stop.
	WhileLeaving bool
	// Run is one round. An error ends the pass of the lifecycle (a rejoin,
	// a recovery, the node left); anything else is the job's to report.
	Run func(ctx context.Context) error
}

// Options are what a Group needs of the agent.
type Options struct {
	// Leaving reports whether `leave` is removing this member.
	Leaving func() bool
	Logger  *slog.Logger
	Now     func() time.Time
}

// State is what a job is doing, for the agent's supervision.
type State struct {
	Name    string
	Rounds  int
	Running bool
	// Since is when the running round started (zero when idle).
	Since time.Time
	// Last is when the latest round ended, and Took how long it took.
	Last time.Time
	Took time.Duration
}

// Group runs a pass's jobs. Create it with NewGroup, then Start each
// stage's jobs as the pass reaches it.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	o      Options
	wg     sync.WaitGroup
	ended  chan error

	mu      sync.Mutex
	stopped bool // Stop was called: Start starts nothing more
	states  map[string]*State
}

// NewGroup returns a group whose jobs run until ctx ends or Stop.
func NewGroup(ctx context.Context, o Options) *Group {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Leaving == nil {
		o.Leaving = func() bool { return false }
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Group{ctx: ctx, cancel: cancel, o: o, ended: make(chan error, 1), states: map[string]*State{}}
}

// Start starts the jobs of table that start at s.
func (g *Group) Start(table []Job, s Start) {
	for _, j := range table {
		if j.Start != s {
			continue
		}
		g.mu.Lock()
		if g.stopped {
			// The stages may still reach a stage while the pass stops:
			// a job started now would run past Stop's wait.
			g.mu.Unlock()
			return
		}
		if _, dup := g.states[j.Name]; dup {
			g.mu.Unlock()
			panic("jobs: " + j.Name + " started twice")
		}
		g.states[j.Name] = &State{Name: j.Name}
		g.wg.Add(1) // under mu: never after Stop's Wait began
		g.mu.Unlock()
		go g.loop(j)
	}
}

// Ended carries the first error a job returned: the pass must end.
func (g *Group) Ended() <-chan error { return g.ended }

// Stop cancels every job and waits until each round in progress returned
// (every call in them has a deadline).
func (g *Group) Stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}

// States lists the jobs by name.
func (g *Group) States() []State {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]State, 0, len(g.states))
	for _, s := range g.states {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b State) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

func (g *Group) loop(j Job) {
	defer g.wg.Done()
	t := time.NewTimer(j.Every)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		if j.WhileLeaving || !g.o.Leaving() {
			if err := g.round(j); err != nil {
				select {
				case g.ended <- err:
				default: // another job ended the pass first
				}
				return
			}
		}
		t.Reset(j.Every)
	}
}

// round runs one round of j and keeps its State.
func (g *Group) round(j Job) error {
	begin := g.o.Now()
	g.update(j.Name, func(s *State) { s.Running, s.Since = true, begin })
	defer func() {
		end := g.o.Now()
		g.update(j.Name, func(s *State) {
			s.Running, s.Since, s.Rounds, s.Last, s.Took = false, time.Time{}, s.Rounds+1, end, end.Sub(begin)
		})
		if took := end.Sub(begin); took > j.Every && took > time.Second {
			g.o.Logger.Debug("job round outlasted its interval", "job", j.Name, "took", took.Round(time.Millisecond), "every", j.Every)
		}
	}()
	err := j.Run(g.ctx)
	if err != nil && g.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // stopped: not an end of the pass
	}
	return err
}

func (g *Group) update(name string, fn func(*State)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.states[name]; ok {
		fn(s)
	}
}
