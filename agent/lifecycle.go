package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/dnsrecords"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/jobs"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// The node's lifecycle is a list of stages, run top to bottom in a pass,
// beside a table of jobs that start as the pass reaches their stage. A pass
// ends when the node must enter the cluster anew (a rejoin, a recovery): the
// next pass repeats the stages marked everyPass. The loop (loop) only pets
// systemd's watchdog and waits for the pass to end.

// stageID names a stage.
type stageID int

const (
	stageIdentity stageID = iota
	stageCertificates
	stageMembership
	stageEtcd
	stageReady
)

type stage struct {
	id    stageID
	name  string
	phase report.Phase
	// everyPass: repeated by the pass after a rejoin or a recovery
	// (identity and certificates stay).
	everyPass bool
	// startJobs: the jobs that start when the pass reaches this stage.
	startJobs []jobs.Start
	run       func(ctx context.Context) error
}

// stages is the node lifecycle, top to bottom.
func (a *Agent) stages() []stage {
	return []stage{
		{id: stageIdentity, name: "identity", phase: report.PhaseIdentity, run: a.identityStage},
		{id: stageCertificates, name: "certificates", phase: report.PhaseCertificates, run: a.certs.Ensure},
		{id: stageMembership, name: "membership", phase: report.PhaseDiscovery, everyPass: true,
			startJobs: []jobs.Start{jobs.FromMembership}, run: a.decideMembership},
		{id: stageEtcd, name: "etcd", phase: report.PhaseStartingEtcd, everyPass: true, run: a.startEtcd},
		{id: stageReady, name: "ready", phase: report.PhaseStartingEtcd, everyPass: true,
			startJobs: []jobs.Start{jobs.FromEtcd}, run: a.waitReady},
	}
}

// jobTable is every periodic job of a pass: its schedule, the stage it
// starts at, and whether it runs while `leave` removes this member. Each
// runs on its own goroutine (package jobs), so none waits for another.
func (a *Agent) jobTable() []jobs.Job {
	table := []jobs.Job{
		// A recovery request ends the pass, whatever stage waits.
		{Name: "recovery-request", Every: recovery.RequestPoll, Start: jobs.FromMembership, WhileLeaving: true, Run: a.recovery.CheckRequest},
		{Name: "certificates", Every: a.certCheckEvery(), Start: jobs.FromEtcd, WhileLeaving: true, Run: a.certs.Run},
		{Name: "etcd-change", Every: rollout.ChangeCheckInterval, Start: jobs.FromEtcd, Run: a.changes.Run},
		// Maintenance starts before READY: a member under NOSPACE is never
		// ready, and its agent may be the one that recovers it. Plan acts
		// only once the local member is a caught-up voter.
		{Name: "maintenance", Every: a.cfg.Maintenance.Interval.D(), Start: jobs.FromEtcd, Run: a.maint.Run},
		// health handles `leave` itself: it ends the pass once the node left.
		{Name: "health", Every: a.cfg.Agent.HealthInterval.D(), Start: jobs.FromReady, WhileLeaving: true, Run: a.healthCheck()},
		{Name: "divergence", Every: hashcheck.Interval, Start: jobs.FromReady, Run: a.divergence.Run},
		{Name: "replaced", Every: recovery.ReplacedCheckInterval, Start: jobs.FromReady, Run: a.recovery.Run},
	}
	if a.cfg.Clients.Route53.Enabled() {
		// The leader's agent keeps the client SRV records in step, under the
		// membership lock; `leave` withdraws its own first (membershipNode).
		table = append(table, jobs.Job{Name: "dns-records", Every: dnsrecords.Interval, Start: jobs.FromReady, Run: a.dns.Run})
	}
	if a.fleet != nil {
		// EC2 notices from the membership stage on: a spot notice may come
		// while the node joins, and a standby completes its launch hook.
		// It leaves the cluster itself, so it runs while leaving.
		table = append(table, jobs.Job{Name: "fleet", Every: a.cfg.Fleet.Interval.D(), Start: jobs.FromMembership, WhileLeaving: true, Run: a.fleet.Run})
	}
	if !a.cfg.FleetLock.Disabled && a.cfg.FleetLock.Address != "" {
		// Every agent frees a gone holder's reboot slot and shows the slots.
		table = append(table, jobs.Job{Name: "fleetlock", Every: fleetlock.SweepInterval, Start: jobs.FromReady, Run: a.fleetLock.Run})
	}
	if every := a.backups.Every(); every > 0 {
		table = append(table, jobs.Job{Name: "backups", Every: every, Start: jobs.FromReady, Run: a.backups.Run})
	}
	return table
}

// Run executes the stages and then supervises until ctx is cancelled.
// It returns nil on a clean shutdown.
func (a *Agent) Run(ctx context.Context) (err error) {
	if a.opts.Runtime == nil {
		return errors.New("agent: Run needs a Runtime")
	}
	if err := os.MkdirAll(filepath.Dir(a.cfg.Agent.StatusFile), 0o755); err != nil {
		return fmt.Errorf("create status dir: %w", err)
	}
	defer func() { a.shutdown(err) }()
	defer func() { a.abandonLaunch(err) }()
	defer a.serveMetrics(ctx)()
	defer a.serveAgentAPI(ctx)()
	defer a.serveFleetLock(ctx)()
	if err := a.leftError(); err != nil {
		return err
	}
	for first := true; ; first = false {
		err := a.runPass(ctx, first)
		if rq, ok := asRecover(err); ok {
			if err := a.recovery.Recover(ctx, rq.Request); err != nil {
				return nil // cancelled: shutting down
			}
			continue
		}
		r, ok := asRejoin(err)
		if !ok {
			return err
		}
		if err := a.leftError(); err != nil {
			// `leave` started after this pass began: never rejoin.
			return err
		}
		if err := a.members.Rejoin(ctx, r); err != nil {
			return fmt.Errorf("rejoin: %w", err)
		}
	}
}

// runPass runs the stages on their own goroutine beside the pass's jobs,
// while the loop pets the watchdog. It returns what ended the pass: nil when
// ctx ended, else an error (rejoinNeeded and recoverNeeded start a new pass).
// etcd's supervision lives with the pass, so a rejoin stops it before the
// data dir is moved.
func (a *Agent) runPass(ctx context.Context, first bool) error {
	pass, cancel := context.WithCancel(ctx)
	g := jobs.NewGroup(pass, jobs.Options{Leaving: a.leaving, Logger: a.log, Now: a.now})
	var stagesErr error
	staged := make(chan struct{})
	go func() {
		defer close(staged)
		stagesErr = a.runStages(pass, g, first)
	}()
	err := a.loop(pass, g, staged, &stagesErr)
	cancel()
	g.Stop()
	<-staged
	a.etcd.Supervised()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// loop is the agent's supervision: WATCHDOG=1 is sent from here only, so a
// wedged loop lets systemd's watchdog restart the agent (which adopts the
// running etcd). It returns when the stages fail, a job ends the pass, or
// ctx ends.
func (a *Agent) loop(ctx context.Context, g *jobs.Group, staged <-chan struct{}, stagesErr *error) error {
	var watchdog <-chan time.Time
	if a.opts.WatchdogInterval > 0 {
		t := time.NewTicker(a.opts.WatchdogInterval)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-watchdog:
			if err := a.opts.Notifier.Watchdog(); err != nil {
				a.log.Debug("sd_notify watchdog", "err", err)
			}
		case <-staged:
			staged = nil // done: from now on only the jobs run
			if *stagesErr != nil {
				return *stagesErr
			}
		case err := <-g.Ended():
			return err
		}
	}
}

// runStages runs the stages of a pass top to bottom, starting each stage's
// jobs as it is reached, and the FromReady jobs once the member was ready.
func (a *Agent) runStages(ctx context.Context, g *jobs.Group, first bool) error {
	table := a.jobTable()
	for _, s := range a.stages() {
		if !first && !s.everyPass {
			continue
		}
		if s.id == stageMembership {
			if req, ok := a.recovery.ToResume(); ok {
				return &recovery.Needed{Request: req}
			}
		}
		for _, start := range s.startJobs {
			g.Start(table, start)
		}
		a.setPhase(s.phase, s.name)
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if _, ok := asRejoin(err); ok {
				return err
			}
			if _, ok := asRecover(err); ok {
				return err
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if s.id == stageCertificates {
			close(a.certified)
		}
	}
	g.Start(table, jobs.FromReady)
	return nil
}

// leaving reports whether `leave` is removing (or removed) this member.
func (a *Agent) leaving() bool {
	_, ok := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir)
	return ok
}
