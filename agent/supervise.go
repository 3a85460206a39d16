package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/pki"
)

// readyPoll is how often the ready stage re-probes while etcd comes up:
// often, since READY=1 waits on it.
const readyPoll = 200 * time.Millisecond

// certCheckInterval is how often the supervision loop re-checks certificate
// expiry: a quarter of renewBefore, so a certificate is renewed with at least
// three quarters of renewBefore left, whatever the validity; hourly at most
// (the default 30d needs no more) and every few seconds at least.
func certCheckInterval(renewBefore time.Duration) time.Duration {
	const most, least = time.Hour, 5 * time.Second
	return max(least, min(most, renewBefore/4))
}

// waitReady blocks until the local member is healthy, a voter and caught
// up, then sends READY=1. Until then STATUS= says what it is waiting for.
func (a *Agent) waitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	var watch membership.Watch
	var learnerSince time.Time
	for {
		h := a.probe(ctx)
		if h.Learner {
			if learnerSince.IsZero() {
				learnerSince = a.now()
			}
			promoted, progress, err := a.members.Promote(ctx, h.SelfID)
			if err != nil {
				return err
			}
			h.Message = "learner, " + progress
			if promoted {
				continue
			}
			if a.now().Sub(learnerSince) > a.opts.LearnerCatchUpTimeout {
				return a.members.AbandonLearner(ctx, h.SelfID)
			}
		}
		if !h.Ready {
			a.checkEtcdChangeWhileNotReady(ctx)
			a.observe(h)
			// A learner catching up is expected; anything else that is
			// not ready for a while may have been removed while away.
			if watch.Observe(h.Learner, a.now()) {
				if r := a.members.Check(ctx); r != nil {
					return r
				}
			}
		} else {
			if a.recovering != nil {
				a.finishRecovery(ctx, h)
			}
			if a.decision.Path != membership.Restart {
				// This node changed the membership: record the formation
				// (idempotent) and the cluster's endpoints in discovery.
				a.members.RecordFormed(ctx, h.ClusterID)
				a.members.PublishEndpoints(ctx, h.Endpoints)
			}
			// READY=1 carries the healthy STATUS in one datagram.
			a.record(h)
			a.rec.SetProblems("health", nil)
			a.rec.SetPhase(h.Phase, h.Message)
			a.flush()
			if err := a.opts.Notifier.Ready(h.Message); err != nil {
				a.log.Warn("sd_notify ready", "err", err)
			}
			a.log.Info("ready", "status", h.Message)
			a.readyOnce.Do(func() { close(a.ready) })
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// supervise is the control loop: health, STATUS=, WATCHDOG=1, certificate
// renewal. WATCHDOG=1 is sent from this loop only, so a wedged loop lets
// systemd's watchdog restart the agent (which adopts the running etcd).
func (a *Agent) supervise(ctx context.Context) error {
	healthTick := time.NewTicker(a.cfg.Agent.HealthInterval.D())
	defer healthTick.Stop()
	certEvery := certCheckInterval(a.cfg.PKI.RenewBefore.D())
	if a.opts.CertCheckInterval > 0 {
		certEvery = a.opts.CertCheckInterval
	}
	certs := time.NewTicker(certEvery)
	defer certs.Stop()
	var watch membership.Watch
	hashes := time.NewTicker(hashCheckInterval)
	defer hashes.Stop()
	changes := time.NewTicker(changeCheckInterval)
	defer changes.Stop()
	maint := time.NewTicker(a.cfg.Maintenance.Interval.D())
	defer maint.Stop()
	replaced := time.NewTicker(replacedCheckInterval)
	defer replaced.Stop()
	backups := a.backupTicker(ctx)
	defer backups.stop()
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
		case <-healthTick.C:
			if m, ok := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir); ok && m.State == sidefile.Left {
				return &LeftError{Marker: sidefile.LeaveMarkerPath(a.cfg.Node.DataDir), Detail: m.String()}
			} else if ok {
				// `leave` is removing this member. etcd 3.7 panics on a
				// Status call that arrives between its removal and its
				// stop (IsLocalMemberLearner), which would take an
				// embedded etcd's agent down with it: do not probe.
				a.setPhase(report.PhaseLeaving, "leaving the cluster: "+m.String())
				continue
			}
			h := a.probe(ctx)
			a.observe(h)
			if h.Ready {
				a.heartbeat(ctx, h.SelfID)
			}
			if watch.Observe(h.Ready, a.now()) {
				if r := a.members.Check(ctx); r != nil {
					return r
				}
			}
		case <-replaced.C:
			a.unlessLeaving(ctx, a.checkReplaced)
		case <-hashes.C:
			a.unlessLeaving(ctx, a.checkDivergence)
		case <-maint.C:
			a.unlessLeaving(ctx, a.maintain)
		case <-backups.C:
			a.unlessLeaving(ctx, func(context.Context) { backups.tick() })
		case <-certs.C:
			a.checkCertificates(ctx)
		case <-changes.C:
			a.unlessLeaving(ctx, a.checkEtcdChange)
		}
	}
}

// unlessLeaving runs a periodic job that talks to etcd only while `leave`
// is not removing this member: etcd 3.7 panics on a Status call between a
// member's removal and its stop (see the health case), and a job that
// waits on the leaving member would keep the loop from noticing the left
// marker.
func (a *Agent) unlessLeaving(ctx context.Context, job func(context.Context)) {
	if _, leaving := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir); leaving {
		return
	}
	job(ctx)
}

// observe publishes one health observation, with a CA restart that waits
// and the worst problem the rest of the agent found (backups, …).
func (a *Agent) observe(h health.Health) {
	a.record(h)
	a.rec.SetProblems("health", h.Problems)
	msg := h.Message
	if why := a.caRestartWaiting(); why != "" {
		msg += "; " + why
	}
	if others := otherProblems(a.rec.Snapshot().Problems, h.Problems); len(others) > 0 {
		msg += "; " + problem.Line(others)
	}
	a.setPhase(h.Phase, msg)
}

// otherProblems are the problems in all that mine does not hold (same code
// and subject): what the STATUS= line adds to the health message.
func otherProblems(all, mine []problem.Problem) []problem.Problem {
	var out []problem.Problem
	for _, p := range all {
		if !slices.ContainsFunc(mine, func(q problem.Problem) bool { return q.Code == p.Code && q.Subject == p.Subject }) {
			out = append(out, p)
		}
	}
	return out
}

// checkCertificates reloads the CA (the operator may have pushed a new
// bundle or key), renews what is due, and restarts etcd when its trust
// bundle changed. A CA that cannot be loaded now keeps the last one.
func (a *Agent) checkCertificates(ctx context.Context) {
	if ca, err := pki.LoadCA(a.cfg.PKI.CACert, a.cfg.PKI.CAKey, a.now()); err != nil {
		a.rec.SetError(fmt.Errorf("reload CA: %w", err))
		a.log.Error("reload CA failed: keeping the last one", "err", err)
	} else {
		a.ca = ca
	}
	if err := a.refreshCertificates(); err != nil {
		a.rec.SetError(fmt.Errorf("certificate renewal: %w", err))
		a.log.Error("certificate renewal failed", "err", err)
		return
	}
	a.checkCABundle(ctx)
}

// record puts a health observation into the report.
func (a *Agent) record(h health.Health) {
	a.rec.Update(func(r *report.NodeReport) {
		r.Ready = h.Ready
		if len(h.Endpoints) > 0 {
			r.Endpoints = h.Endpoints
		}
	})
	if len(h.Endpoints) > 0 {
		writeEndpoints(a.cfg.Node.DataDir, a.log, sortedCopy(h.Endpoints))
	}
}

// petDuringStartup sends WATCHDOG=1 while the start-up stages run: they can
// legitimately wait for a long time (other nodes in discovery), each with its
// own deadlines and retries. The returned func stops it; from then on only
// the supervision loop pets the watchdog.
func (a *Agent) petDuringStartup(ctx context.Context) (stop func()) {
	if a.opts.WatchdogInterval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.opts.WatchdogInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = a.opts.Notifier.Watchdog()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// hashCheckInterval is how often the leader's agent compares every member's
// HashKV. Each comparison makes every member hash its whole database, so
// only the leader's agent does it, and not often.
const hashCheckInterval = 10 * time.Minute

// checkDivergence compares the members' HashKV at a common revision when the
// local member leads, and reports replicas that diverged (etcd's own checks
// also run: the initial check at start, the compact-hash check).
func (a *Agent) checkDivergence(ctx context.Context) {
	h := a.probe(ctx)
	if !h.Ready || !h.Leader {
		return
	}
	check := hashcheck.CompareHashKV(ctx, a.client, nil)
	if check.Mismatch {
		a.log.Error("replicas diverged", "check", check.Description)
		a.rec.AddDecision(report.ActionDivergence, check.Description)
		a.flush()
		return
	}
	a.log.Debug("hashkv compared", "check", check.Description)
}
