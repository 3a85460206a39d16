package membership

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// Timing of the join path.
const (
	// formedStatusTimeout and formedProbeTimeout bound the check for an
	// already formed cluster (a connection attempt: cluster.DialTimeout).
	formedStatusTimeout = 500 * time.Millisecond
	formedProbeTimeout  = 2 * time.Second
	// standbyRetry is how often a standby node looks again (at most; see
	// probeInterval).
	standbyRetry = 3 * time.Second
)

// probeInterval is how often a waiting node probes the members: often
// enough that an outage is measured by several probes within the grace.
func (j *Job) probeInterval() time.Duration {
	return max(500*time.Millisecond, min(standbyRetry, j.n.Config().Cluster.DeadMemberGrace.D()/3))
}

// joinCluster is the path of a node with no data that must enter a formed
// cluster as a new member: the registry filled up without it, or the fence
// found the cluster formed (or its own past self recorded as started). It
// waits until a quorum answers — "nobody answers" never means bootstrap —
// then, under the cluster-wide membership lock, removes what must go (its
// past self, a member this node saw down for the whole grace period, a stale
// learner) and adds itself as a learner.
func (j *Job) joinCluster(ctx context.Context, res discovery.Result, rejoin bool) (Decision, *clientv3.Client, error) {
	outages := map[uint64]Outage{}
	bo := backoff.Backoff{Min: time.Second, Max: 15 * time.Second}
	what := "join"
	if rejoin {
		what = "rejoin"
	}
	for {
		eps := j.candidateEndpoints(ctx, res)
		cli, live := j.clusterFormed(ctx, eps)
		if cli == nil {
			j.n.SetStatus(report.PhaseJoining, unreachableMessage(eps, live, what))
			if err := cluster.Sleep(ctx, bo.Next()); err != nil {
				return Decision{}, nil, err
			}
			continue
		}
		bo.Reset()
		d, done, err := j.joinOnce(ctx, cli, res, outages)
		if done {
			if d.Path != Join || err != nil {
				_ = cli.Close()
				return d, nil, err
			}
			return d, cli, nil
		}
		_ = cli.Close()
		if err != nil {
			if ctx.Err() != nil {
				return Decision{}, nil, ctx.Err()
			}
			j.n.Logger().Warn("join attempt failed", "err", err)
			j.n.SetStatus(report.PhaseJoining, "join attempt failed, retrying: "+health.ShortErr(err))
		}
		if err := cluster.Sleep(ctx, j.probeInterval()); err != nil {
			return Decision{}, nil, err
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
//
// Every change is planned on a survey taken under the lock, and the snapshot
// before it can take minutes: after the snapshot the cluster is surveyed and
// the step planned again, and only the same step is taken (anything else is
// planned anew, from that fresh survey).
func (j *Job) joinOnce(ctx context.Context, cli *clientv3.Client, res discovery.Result, outages map[uint64]Outage) (d Decision, done bool, err error) {
	j.n.SetStatus(report.PhaseJoining, "waiting for the cluster's membership lock")
	lock, err := cluster.TakeLock(ctx, cli, 0, j.n.Logger())
	if err != nil {
		return d, false, err
	}
	defer lock.Release()
	self := j.self()
	var facts JoinFacts
	fresh := false // facts were surveyed after a snapshot: plan on them
	for {
		if !fresh {
			if facts, err = j.survey(ctx, cli, outages); err != nil {
				return d, false, err
			}
		}
		fresh = false
		step := PlanJoin(facts)
		j.n.Logger().Info("join plan", "step", step.Kind, "reason", step.Reason)
		switch step.Kind {
		case StepStandby:
			j.n.SetStatus(report.PhaseStandby, step.Reason)
			return d, false, nil
		case StepRemove:
			r := step.Remove
			j.n.SetStatus(report.PhaseJoining, fmt.Sprintf("removing member %s: %s", r.Name, r.Reason))
			var ok bool
			if facts, step, ok, err = j.confirm(ctx, cli, lock, outages, step, "removing member "+r.Name); err != nil {
				return d, false, err
			}
			if !ok {
				fresh = true
				continue
			}
			r = step.Remove
			if err := cluster.RemoveMember(ctx, cli, r.ID, func(msg string) {
				j.n.SetStatus(report.PhaseJoining, fmt.Sprintf("removing member %s: %s", r.Name, msg))
			}); err != nil {
				return d, false, fmt.Errorf("remove member %s (%x): %w", r.Name, r.ID, err)
			}
			j.n.Recorder().AddDecision(report.ActionRemoveMember, fmt.Sprintf("%s (%x): %s", r.Name, r.ID, r.Reason))
			j.n.Logger().Warn("removed member", "member", r.Name, "id", fmt.Sprintf("%x", r.ID), "reason", r.Reason)
			delete(outages, r.ID)
			j.forgetHeartbeat(ctx, cli, r.ID)
		case StepResume, StepAdd:
			if step.Kind == StepAdd {
				j.n.SetStatus(report.PhaseJoining, "adding this node as a learner: "+step.Reason)
				var ok bool
				if facts, step, ok, err = j.confirm(ctx, cli, lock, outages, step, "adding learner "+self.Name); err != nil {
					return d, false, err
				}
				if !ok {
					fresh = true
					continue
				}
				err := cluster.AddLearner(ctx, cli, self.PeerURL, func(msg string) {
					j.n.SetStatus(report.PhaseJoining, "adding this node as a learner: "+msg)
				})
				if err != nil {
					return d, false, fmt.Errorf("add this node as learner: %w", err)
				}
				j.n.Recorder().AddDecision(report.ActionAddLearner, step.Reason)
			}
			if err := j.hook(HookAdded); err != nil {
				return d, true, err
			}
			lctx, cancel := context.WithTimeout(ctx, cluster.ListTimeout)
			list, err := cli.MemberList(lctx)
			cancel()
			if err != nil {
				return d, false, fmt.Errorf("member list after add: %w", err)
			}
			ms := make([]ClusterMember, 0, len(list.Members))
			var eps []string
			for _, m := range list.Members {
				ms = append(ms, ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs})
				if !slices.Contains(m.PeerURLs, self.PeerURL) {
					eps = append(eps, m.ClientURLs...)
				}
			}
			if err := sidefile.WriteEndpoints(j.dataDir(), eps); err != nil {
				j.n.Logger().Debug("remember cluster endpoints", "err", err)
			}
			return Decision{Path: Join, InitialClusterState: "existing", Token: res.Token,
				InitialCluster: ExistingCluster(ms, self), Reason: step.Reason}, true, nil
		}
	}
}

// confirm is the last look before the change step: it takes the snapshot
// before the change (it can take minutes), surveys the cluster again under
// the lock, plans again on that survey and checks the lock. ok says the
// fresh plan again is still step (the same kind, the same member): act on
// again. Otherwise plan anew on facts, the fresh survey.
func (j *Job) confirm(ctx context.Context, cli *clientv3.Client, lock *cluster.Lock, outages map[uint64]Outage, step JoinStep, change string) (facts JoinFacts, again JoinStep, ok bool, err error) {
	if facts, err = j.snapshotAndSurvey(ctx, cli, outages, change); err != nil {
		return facts, again, false, err
	}
	again = PlanJoin(facts)
	if !sameStep(step, again) {
		j.n.Logger().Info("join plan changed during the snapshot", "was", step.Reason, "now", again.Reason)
		return facts, again, false, nil
	}
	if err := lock.Check(ctx); err != nil {
		return facts, again, false, err
	}
	return facts, again, true, nil
}

// sameStep reports whether again, planned after the snapshot, is the step
// planned before it.
func sameStep(before, again JoinStep) bool {
	if before.Kind != again.Kind {
		return false
	}
	if before.Remove == nil || again.Remove == nil {
		return before.Remove == again.Remove
	}
	return before.Remove.ID == again.Remove.ID
}

// snapshotAndSurvey takes the snapshot before a change, then surveys the
// cluster again: the plan made before the snapshot may be stale. This node
// did not probe the members while the snapshot ran: that pause neither
// breaks an outage it measured nor counts toward it (Pause), so a long
// snapshot cannot keep a dead member in forever, and a member that came back
// meanwhile answers now or left a heartbeat.
func (j *Job) snapshotAndSurvey(ctx context.Context, cli *clientv3.Client, outages map[uint64]Outage, change string) (JoinFacts, error) {
	began := j.n.Now()
	j.n.SnapshotBeforeChange(ctx, cli, change)
	if err := j.hook(HookSnapshotted); err != nil {
		return JoinFacts{}, err
	}
	if d := j.n.Now().Sub(began); d > 0 {
		paused := Pause(outages, d)
		clear(outages)
		maps.Copy(outages, paused)
	}
	return j.survey(ctx, cli, outages)
}

// Facts is one survey of the cluster through cli as PlanJoin and
// LeaveCheck see it, without outages measured before.
func (j *Job) Facts(ctx context.Context, cli *clientv3.Client) (JoinFacts, error) {
	return j.survey(ctx, cli, map[uint64]Outage{})
}

// survey takes one survey of the cluster through cli, folds it into the
// outages this node has measured and points cli at the other members.
func (j *Job) survey(ctx context.Context, cli *clientv3.Client, outages map[uint64]Outage) (JoinFacts, error) {
	s, err := cluster.Take(ctx, cli, cluster.Options{Now: j.n.Now})
	if err != nil {
		return JoinFacts{}, err
	}
	beats, err := cluster.Heartbeats(ctx, cli)
	if err != nil {
		j.n.Logger().Debug("read heartbeats", "err", err)
	}
	handovers, err := cluster.Handovers(ctx, cli)
	if err != nil {
		j.n.Logger().Debug("read seat offers", "err", err)
	}
	at := j.n.Now()
	ms := make([]ClusterMember, len(s.Members))
	round := make([]Probe, len(s.Members))
	for i, m := range s.Members {
		ms[i] = ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner, Healthy: m.Answered()}
		round[i] = Probe{ID: m.ID, At: at, Answered: m.Answered()}
	}
	next := TrackOutages(outages, round, beats, 3*j.probeInterval()+cluster.MemberTimeout)
	clear(outages)
	maps.Copy(outages, next)
	for i := range ms {
		ms[i].DownFor = outages[ms[i].ID].Down()
	}
	selfPeer := j.self().PeerURL
	if eps := s.ClientURLs(selfPeer); len(eps) > 0 {
		cli.SetEndpoints(eps...)
	}
	return JoinFacts{ClusterID: s.ClusterID, SelfPeerURL: selfPeer, Members: ms, DesiredSize: j.n.Config().Cluster.Size,
		Grace: j.n.Config().Cluster.DeadMemberGrace.D(), Handovers: handovers}, nil
}

// forgetHeartbeat deletes a removed member's heartbeat.
func (j *Job) forgetHeartbeat(ctx context.Context, cli *clientv3.Client, id uint64) {
	if err := cluster.ForgetHeartbeat(ctx, cli, id); err != nil {
		j.n.Logger().Debug("delete heartbeat", "id", fmt.Sprintf("%x", id), "err", err)
	}
}

// clusterFormed returns a client to the cluster when a formed one answers at
// eps (nil otherwise), and the endpoints that accepted a connection. It is
// quick when nothing is formed yet (the usual simultaneous bootstrap):
// endpoints that refuse connections are skipped, and a member that is up but
// has no leader is still waiting for its founding peers.
func (j *Job) clusterFormed(ctx context.Context, eps []string) (cli *clientv3.Client, live []string) {
	for _, ep := range eps {
		if cluster.Dialable(ctx, ep) {
			live = append(live, ep)
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	cli, err := j.n.Dial(live)
	if err != nil {
		return nil, live
	}
	for _, ep := range live {
		// Status is served without quorum: a leader means a formed cluster.
		// A founding peer that listens but does not serve yet is waiting
		// like us; a formed member answers in milliseconds.
		sctx, cancel := context.WithTimeout(ctx, formedStatusTimeout)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil || st.Leader == 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, formedProbeTimeout)
		_, err = cli.MemberList(lctx)
		cancel()
		if err == nil {
			return cli, live
		}
	}
	_ = cli.Close()
	return nil, live
}
