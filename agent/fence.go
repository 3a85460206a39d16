package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// enterAsFounder is the path of a founding member without data: the fence
// decides between bootstrap and join, and waits while it cannot tell. It
// never bootstraps on silence.
func (a *Agent) enterAsFounder(ctx context.Context, res discovery.Result) (membership.Decision, error) {
	var answer atomic.Value // what this founder answers on its peer port
	answer.Store("blank")
	var readySince time.Time
	if _, registry := a.disc.(discovery.FormationBook); !registry {
		// Other founders ask this node's peer port until its etcd starts.
		stop, err := a.answerAsFounder(ctx, &answer)
		if err != nil {
			a.log.Warn("cannot answer other founders on the peer port", "err", err)
		} else {
			defer stop()
		}
	}
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Second}
	for {
		v, err := a.fence(ctx, res, readySince)
		if err != nil {
			return membership.Decision{}, err
		}
		a.log.Info("formation fence", "verdict", v.Kind, "reason", v.Reason)
		switch v.Kind {
		case membership.FenceReady:
			answer.Store("ready")
			readySince = a.now()
			a.setPhase(report.PhaseDiscovery, v.Reason)
			continue
		case membership.FenceBootstrap:
			d, err := membership.Decide(membership.Facts{Self: a.self(), Discovered: discovered(res), Token: res.Token})
			d.Reason += " (" + v.Reason + ")"
			return d, err
		case membership.FenceJoin:
			a.rec.AddDecision(report.ActionFence, v.Reason)
			return a.joinCluster(ctx, res, true)
		}
		a.setPhase(report.PhaseDiscovery, v.Reason)
		if err := sleepCtx(ctx, bo.Next()); err != nil {
			return membership.Decision{}, err
		}
	}
}

// fence gathers what a founding member without data must know before it may
// bootstrap and returns the verdict: the formation records of a registry
// (read until discovery answers), or every other founder's answer (static).
func (a *Agent) fence(ctx context.Context, res discovery.Result, readySince time.Time) (membership.FenceVerdict, error) {
	facts := membership.FenceFacts{SelfReady: !readySince.IsZero()}
	if facts.SelfReady {
		facts.ReadyFor = a.now().Sub(readySince)
	}
	if cli, _ := a.clusterFormed(ctx, a.candidateEndpoints(ctx, res)); cli != nil {
		_ = cli.Close()
		facts.ClusterAnswers = true
	}
	if book, ok := a.disc.(discovery.FormationBook); ok {
		rf, err := a.registryFormation(ctx, book)
		if err != nil {
			return membership.FenceVerdict{}, err
		}
		facts.Registry = &rf
	} else {
		facts.Founders = a.probeFounders(ctx, res.Members)
		for _, f := range facts.Founders {
			a.log.Debug("founder answer", "founder", f.Name, "state", f.State, "detail", f.Detail)
		}
	}
	return membership.Fence(facts), nil
}

// registryFormation reads the registry's formation records, retrying while
// discovery does not answer: without them nothing may be decided.
func (a *Agent) registryFormation(ctx context.Context, book discovery.FormationBook) (membership.RegistryFormation, error) {
	selfID, err := book.MemberID(discovery.Member{Name: a.self().Name, PeerURL: a.self().PeerURL})
	if err != nil {
		return membership.RegistryFormation{}, err
	}
	var f discovery.Formation
	err = a.retry(ctx, "reading formation records from discovery", func(ctx context.Context) error {
		f, err = book.Formation(ctx)
		return err
	})
	if err != nil {
		return membership.RegistryFormation{}, err
	}
	rf := membership.RegistryFormation{Formed: f.Formed != nil}
	if f.Formed != nil {
		rf.FormedDetail = f.Formed.String()
	}
	if s, ok := f.Started[selfID]; ok {
		rf.SelfStarted, rf.SelfStartedAt = true, s.At
	}
	return rf, nil
}

// recordStarted writes this founder's started record before its etcd first
// starts with --initial-cluster-state=new; etcd does not start until it is
// written.
func (a *Agent) recordStarted(ctx context.Context) error {
	book, ok := a.disc.(discovery.FormationBook)
	if !ok {
		return nil
	}
	self := discovery.Member{Name: a.self().Name, PeerURL: a.self().PeerURL}
	return a.retry(ctx, "recording this founder's start in discovery", func(ctx context.Context) error {
		return book.RecordStarted(ctx, self, a.now())
	})
}

// forgetFailedStart withdraws this founder's started record after etcd
// failed to start (port in use, bad flags, …) and provably never ran: the
// runtime runs nothing and the data dir holds no WAL, so the member never
// voted. Without this, founders whose first start failed would all be
// fenced as "ran before" and wait forever for a cluster nobody formed.
// Anything uncertain keeps the record: safe, at worst the node joins later.
func (a *Agent) forgetFailedStart(ctx context.Context) {
	book, ok := a.disc.(discovery.FormationBook)
	if !ok || ctx.Err() != nil {
		return
	}
	if running, err := a.opts.Runtime.Running(ctx); err != nil || running {
		return
	}
	if has, err := datadir.HasMember(a.cfg.Node.DataDir); err != nil || has {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := book.ForgetStarted(fctx, discovery.Member{Name: a.self().Name, PeerURL: a.self().PeerURL}); err != nil {
		a.log.Warn("withdraw the started record after a failed first start", "err", err)
		return
	}
	a.rec.AddDecision(report.ActionFence, "etcd failed to start and left no WAL: its started record in discovery is withdrawn")
	a.log.Info("withdrew the started record: etcd never ran")
}

// recordFormed writes the formation record once this member is healthy,
// before READY=1; a discovery that stays unreachable delays READY by at most
// recordFormedWait (the started records already fence the founders).
func (a *Agent) recordFormed(ctx context.Context, clusterID uint64) {
	book, ok := a.disc.(discovery.FormationBook)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, recordFormedWait)
	defer cancel()
	f := discovery.Formed{ClusterID: fmt.Sprintf("%x", clusterID), By: a.id.Name, At: a.now().UTC()}
	err := a.retry(ctx, "recording the cluster's formation in discovery", func(ctx context.Context) error {
		return book.RecordFormed(ctx, f)
	})
	if err != nil {
		a.log.Warn("record formation in discovery", "err", err)
	}
}

const recordFormedWait = 30 * time.Second

// retry runs step until it succeeds or ctx ends, with capped backoff, saying
// what it waits for in STATUS=.
func (a *Agent) retry(ctx context.Context, what string, step func(context.Context) error) error {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 15 * time.Second}
	for {
		err := step(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		wait := bo.Next()
		a.log.Warn(what+" failed, retrying", "err", err, "in", wait)
		a.setPhase(a.rec.Snapshot().Phase, fmt.Sprintf("%s failed (%s), retrying in %s", what, health.ShortErr(err), wait.Round(time.Millisecond)))
		if err := sleepCtx(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}
