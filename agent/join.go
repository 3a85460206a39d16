package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// Timing of the join path.
const (
	// formedDialTimeout, formedStatusTimeout and formedProbeTimeout bound
	// the check for an already formed cluster.
	formedDialTimeout   = 500 * time.Millisecond
	formedStatusTimeout = 500 * time.Millisecond
	formedProbeTimeout  = 2 * time.Second
	// standbyRetry is how often a standby node looks again (at most; see
	// probeInterval).
	standbyRetry = 3 * time.Second
)

// probeInterval is how often a waiting node probes the members: often
// enough that an outage is measured by several probes within the grace.
func (a *Agent) probeInterval() time.Duration {
	return max(500*time.Millisecond, min(standbyRetry, a.cfg.Cluster.DeadMemberGrace.D()/3))
}

// joinCluster is the path of a node with no data that must enter a formed
// cluster as a new member: the registry filled up without it, or the fence
// found the cluster formed (or its own past self recorded as started). It
// waits until a quorum answers — "nobody answers" never means bootstrap —
// then, under the cluster-wide membership lock, removes what must go (its
// past self, a member this node saw down for the whole grace period, a stale
// learner) and adds itself as a learner.
func (a *Agent) joinCluster(ctx context.Context, res discovery.Result, rejoin bool) (membership.Decision, error) {
	outages := map[uint64]membership.Outage{}
	bo := backoff.Backoff{Min: time.Second, Max: 15 * time.Second}
	what := "join"
	if rejoin {
		what = "rejoin"
	}
	for {
		eps := a.candidateEndpoints(ctx, res)
		cli, live := a.clusterFormed(ctx, eps)
		if cli == nil {
			a.setPhase(report.PhaseJoining, unreachableMessage(eps, live, what))
			if err := sleepCtx(ctx, bo.Next()); err != nil {
				return membership.Decision{}, err
			}
			continue
		}
		bo.Reset()
		d, done, err := a.joinOnce(ctx, cli, res, outages)
		if done {
			if d.Path != membership.Join {
				_ = cli.Close()
			}
			return d, err
		}
		_ = cli.Close()
		if err != nil {
			if ctx.Err() != nil {
				return membership.Decision{}, ctx.Err()
			}
			a.log.Warn("join attempt failed", "err", err)
			a.setPhase(report.PhaseJoining, "join attempt failed, retrying: "+health.ShortErr(err))
		}
		if err := sleepCtx(ctx, a.probeInterval()); err != nil {
			return membership.Decision{}, err
		}
	}
}

// unreachableMessage is the STATUS= of a node waiting for a formed cluster's
// quorum; live are the endpoints of eps that accepted a connection.
func unreachableMessage(eps, live []string, what string) string {
	if len(live) == 0 {
		return fmt.Sprintf("cluster formed, no member reachable: waiting to %s as a new member (tried %s)", what, strings.Join(eps, ","))
	}
	return fmt.Sprintf("cluster formed, no quorum answers (reachable: %s): waiting to %s as a new member", strings.Join(live, ","), what)
}

// joinOnce takes the lock and plans until it adds this node or finds it
// must resume an interrupted join. done is false when the caller should look
// again later (standby or an error). The lock is released before returning:
// a learner catches up without it (etcd itself allows one learner at a time,
// and PlanJoin waits while another node's learner joins).
func (a *Agent) joinOnce(ctx context.Context, cli *clientv3.Client, res discovery.Result, outages map[uint64]membership.Outage) (d membership.Decision, done bool, err error) {
	a.setPhase(report.PhaseJoining, "waiting for the cluster's membership lock")
	lock, err := lockMembership(ctx, cli, 0)
	if err != nil {
		return d, false, err
	}
	defer lock.release(a.log)
	self := a.self()
	for {
		facts, err := a.gatherMembers(ctx, cli, outages)
		if err != nil {
			return d, false, err
		}
		step := membership.PlanJoin(facts)
		a.log.Info("join plan", "step", step.Kind, "reason", step.Reason)
		switch step.Kind {
		case membership.StepStandby:
			a.setPhase(report.PhaseStandby, step.Reason)
			return d, false, nil
		case membership.StepRemove:
			r := step.Remove
			a.setPhase(report.PhaseJoining, fmt.Sprintf("removing member %s: %s", r.Name, r.Reason))
			a.snapshotBeforeChange(ctx, cli, "removing member "+r.Name)
			if err := lock.check(ctx); err != nil {
				return d, false, err
			}
			if err := a.removeMember(ctx, cli, r.ID, func(msg string) {
				a.setPhase(report.PhaseJoining, fmt.Sprintf("removing member %s: %s", r.Name, msg))
			}); err != nil {
				return d, false, fmt.Errorf("remove member %s (%x): %w", r.Name, r.ID, err)
			}
			a.rec.AddDecision(report.ActionRemoveMember, fmt.Sprintf("%s (%x): %s", r.Name, r.ID, r.Reason))
			a.log.Warn("removed member", "member", r.Name, "id", fmt.Sprintf("%x", r.ID), "reason", r.Reason)
			delete(outages, r.ID)
			a.forgetHeartbeat(ctx, cli, r.ID)
		case membership.StepResume, membership.StepAdd:
			if step.Kind == membership.StepAdd {
				a.setPhase(report.PhaseJoining, "adding this node as a learner: "+step.Reason)
				a.snapshotBeforeChange(ctx, cli, "adding learner "+self.Name)
				if err := lock.check(ctx); err != nil {
					return d, false, err
				}
				err := retryUnhealthy(ctx, func(ctx context.Context) error {
					_, err := cli.MemberAddAsLearner(ctx, []string{self.PeerURL})
					return err
				}, func(err error) {
					a.setPhase(report.PhaseJoining, fmt.Sprintf("adding this node as a learner: etcd refuses until every member has been connected for a while (%v); retrying", err))
				})
				if err != nil {
					return d, false, fmt.Errorf("add this node as learner: %w", err)
				}
				a.rec.AddDecision(report.ActionAddLearner, step.Reason)
			}
			if err := a.joinHook("added"); err != nil {
				return d, true, err
			}
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			list, err := cli.MemberList(lctx)
			cancel()
			if err != nil {
				return d, false, fmt.Errorf("member list after add: %w", err)
			}
			ms := make([]membership.ClusterMember, 0, len(list.Members))
			for _, m := range list.Members {
				ms = append(ms, membership.ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs})
			}
			a.cluster = cli
			writeEndpoints(a.cfg.Node.DataDir, a.log, clientURLsOf(list.Members, self.PeerURL))
			return membership.Decision{Path: membership.Join, InitialClusterState: "existing", Token: res.Token,
				InitialCluster: membership.ExistingCluster(ms, self), Reason: step.Reason}, true, nil
		}
	}
}

// gatherMembers lists the members and probes each one (in parallel), and
// folds the probes into the outages this node has measured.
func (a *Agent) gatherMembers(ctx context.Context, cli *clientv3.Client, outages map[uint64]membership.Outage) (membership.JoinFacts, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	list, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		return membership.JoinFacts{}, fmt.Errorf("member list: %w", err)
	}
	beats := a.heartbeats(ctx, cli)
	ms := make([]membership.ClusterMember, len(list.Members))
	round := make([]membership.Probe, len(list.Members))
	done := make(chan struct{})
	for i, m := range list.Members {
		ms[i] = membership.ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
		go func() {
			defer func() { done <- struct{}{} }()
			ms[i].Healthy = a.memberAnswers(ctx, cli, m.ClientURLs)
			round[i] = membership.Probe{ID: m.ID, At: a.now(), Answered: ms[i].Healthy}
		}()
	}
	for range list.Members {
		<-done
	}
	next := membership.TrackOutages(outages, round, beats, 3*a.probeInterval()+memberProbeTimeout)
	clear(outages)
	for id, o := range next {
		outages[id] = o
	}
	for i := range ms {
		ms[i].DownFor = outages[ms[i].ID].Down()
	}
	selfPeer := a.self().PeerURL
	if eps := clientURLsOf(list.Members, selfPeer); len(eps) > 0 {
		cli.SetEndpoints(eps...)
	}
	return membership.JoinFacts{SelfPeerURL: selfPeer, Members: ms, DesiredSize: a.cfg.Cluster.Size,
		Grace: a.cfg.Cluster.DeadMemberGrace.D()}, nil
}

// memberProbeTimeout bounds one member's status query while planning.
const memberProbeTimeout = 2 * time.Second

// memberAnswers reports whether the member answers a status query at one of
// its client URLs. A refused connection fails at once; a frozen member
// (connection accepted, no answer) after memberProbeTimeout.
func (a *Agent) memberAnswers(ctx context.Context, cli *clientv3.Client, clientURLs []string) bool {
	for _, u := range clientURLs {
		if !dialable(ctx, u) {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
		_, err := cli.Status(sctx, u)
		cancel()
		if err == nil {
			return true
		}
	}
	return false
}
