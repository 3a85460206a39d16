package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/certs"
	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// readyPoll is how often the ready stage re-probes while etcd comes up:
// often, since READY=1 waits on it.
const readyPoll = 200 * time.Millisecond

// abandonRetry is how long a learner that failed to give itself up (lock
// busy or lost, cluster not answering) waits before it tries again.
const abandonRetry = 5 * time.Second

// waitReady blocks until the local member is healthy, a voter and caught
// up, then sends READY=1. Until then STATUS= says what it is waiting for.
func (a *Agent) waitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	var watch membership.Watch
	var learnerSince, nextAbandon time.Time
	for {
		h := a.etcd.Probe(ctx)
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
			if a.now().Sub(learnerSince) > a.opts.LearnerCatchUpTimeout && !a.now().Before(nextAbandon) {
				err := a.members.AbandonLearner(ctx, h.SelfID)
				if _, ok := asRejoin(err); ok || ctx.Err() != nil {
					return err
				}
				if err == nil {
					continue // promoted meanwhile: the next probe sees a voter
				}
				// The lock was busy or lost, or the cluster did not answer:
				// try again, not in a loop (a removal that did go through
				// shows as this member missing, and the membership check
				// below then moves the data aside).
				a.log.Warn("giving up the learner failed; retrying", "err", err, "in", abandonRetry)
				h.Message += "; removing this learner to join again failed, retrying: " + health.ShortErr(err)
				nextAbandon = a.now().Add(abandonRetry)
			}
		}
		if !h.Ready {
			a.observe(h)
			// A learner catching up is expected; anything else that is
			// not ready for a while may have been removed while away.
			if watch.Observe(h.Learner, a.now()) {
				if r := a.members.Check(ctx, watch.UnhealthySince()); r != nil {
					return r
				}
			}
		} else {
			a.recovery.Finish(ctx, h)
			if a.decision.Path != membership.Restart {
				// This node changed the membership: record the formation
				// (idempotent) and the cluster's endpoints in discovery.
				a.members.RecordFormed(ctx, h.ClusterID)
				a.members.PublishEndpoints(ctx, h.Endpoints)
				a.recovery.TrackEndpoints(ctx, h)
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

// healthCheck is the health job of one pass: probe the local member,
// publish what it found, beat its heartbeat, and ask the cluster whether
// this node still belongs to it when the member stays unhealthy. While
// `leave` removes the member it only says so (etcd 3.7 panics on a Status
// call between a member's removal and its stop), and once the node left it
// ends the pass.
func (a *Agent) healthCheck() func(context.Context) error {
	var watch membership.Watch
	return func(ctx context.Context) error {
		if m, ok := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir); ok {
			if m.State == sidefile.Left {
				return &LeftError{Marker: sidefile.LeaveMarkerPath(a.cfg.Node.DataDir), Detail: m.String()}
			}
			a.setPhase(report.PhaseLeaving, "leaving the cluster: "+m.String())
			return nil
		}
		h := a.etcd.Probe(ctx)
		a.observe(h)
		if h.Ready {
			if err := cluster.Beat(ctx, a.etcd.Local(), h.SelfID, a.now()); err != nil {
				a.log.Debug("heartbeat", "err", err)
			}
		}
		if watch.Observe(h.Ready, a.now()) {
			if r := a.members.Check(ctx, watch.UnhealthySince()); r != nil {
				return r
			}
		}
		return nil
	}
}

// certCheckEvery is how often certificates are checked.
func (a *Agent) certCheckEvery() time.Duration {
	if a.opts.CertCheckInterval > 0 {
		return a.opts.CertCheckInterval
	}
	return certs.CheckEvery(a.cfg.PKI.RenewBefore.D())
}

// observe publishes one health observation, with a CA restart that waits
// and the worst problem the rest of the agent found (backups, …).
func (a *Agent) observe(h health.Health) {
	a.record(h)
	a.rec.SetProblems("health", h.Problems)
	msg := h.Message
	if why := a.caRestart.Waiting(); why != "" {
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

// record puts a health observation into the report.
func (a *Agent) record(h health.Health) {
	a.rec.Update(func(r *report.NodeReport) {
		r.Ready = h.Ready
		if len(h.Endpoints) > 0 {
			r.Endpoints = h.Endpoints
		}
	})
	if len(h.Endpoints) > 0 {
		if err := sidefile.WriteEndpoints(a.cfg.Node.DataDir, h.Endpoints); err != nil {
			a.log.Debug("remember cluster endpoints", "err", err)
		}
	}
	if h.Ready && h.ClusterID != 0 {
		if err := sidefile.WriteMembers(a.cfg.Node.DataDir, knownMembers(h)); err != nil {
			a.log.Debug("remember the member list", "err", err)
		}
	}
}

// knownMembers is the member list of a ready observation, as recorded.
func knownMembers(h health.Health) sidefile.Members {
	out := sidefile.Members{ClusterID: fmt.Sprintf("%x", h.ClusterID)}
	for _, m := range h.Members {
		out.Members = append(out.Members, sidefile.Member{Name: m.Name, ID: fmt.Sprintf("%x", m.ID),
			PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return out
}
