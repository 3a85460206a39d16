package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// A member that cannot use its data — removed from the cluster while it was
// down — moves the data aside (never deletes it) and enters the cluster
// again as a new member.

// rejoinNeeded ends one pass of the lifecycle: the data dir is moved aside
// and the node goes through membership again.
type rejoinNeeded struct {
	reason string
}

func (r *rejoinNeeded) Error() string { return "rejoin as a new member: " + r.reason }

// removedCheckAfter is how long the local member must have been unable to
// become healthy before the agent asks the cluster whether it still belongs
// to it (and how often it asks again).
const removedCheckAfter = 5 * time.Second

// defaultLearnerCatchUpTimeout bounds a learner's catch-up: a learner still
// not promoted after it removes itself and the join starts over.
const defaultLearnerCatchUpTimeout = 15 * time.Minute

// checkMembership asks the rest of the cluster, linearizably, whether this
// node's data still belongs to it: the member ID in the WAL must be in the
// member list of the cluster ID in the WAL. It returns a rejoinNeeded only on
// such an answer; no answer, or a cluster without quorum, proves nothing.
func (a *Agent) checkMembership(ctx context.Context) *rejoinNeeded {
	if left, _ := leftMarker(a.cfg.Node.DataDir); left {
		return nil // leaving: the removal is expected, and `leave` finishes it
	}
	id, err := datadir.ReadIdentity(a.cfg.Node.DataDir)
	if err != nil {
		a.log.Debug("membership check: read member identity", "err", err)
		return nil
	}
	if s, _ := a.recovery.SupersededByRegistry(ctx); s != nil {
		return &rejoinNeeded{reason: s.Reason}
	}
	self := a.specBase().ClientURL()
	eps := slices.DeleteFunc(readEndpoints(a.cfg.Node.DataDir), func(ep string) bool { return ep == self })
	if len(eps) == 0 {
		return nil
	}
	cli, err := a.newClusterClient(eps)
	if err != nil {
		return nil
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		a.log.Debug("membership check: member list", "err", err)
		return nil
	}
	if got := list.Header.GetClusterId(); got != id.ClusterID {
		// Another cluster answers at the addresses this node knew. Proof
		// only when it records that it replaced this node's cluster (a
		// recovery); otherwise nothing is moved.
		if s := recovery.SupersededByAnswer(ctx, cli, id.ClusterID); s != nil {
			return &rejoinNeeded{reason: s.Reason}
		}
		a.log.Warn("membership check: another cluster answers at this node's known endpoints",
			"data_cluster", fmt.Sprintf("%x", id.ClusterID), "answering_cluster", fmt.Sprintf("%x", got), "endpoints", eps)
		return nil
	}
	for _, m := range list.Members {
		if m.ID == id.MemberID {
			return nil
		}
	}
	return &rejoinNeeded{reason: fmt.Sprintf("member %x was removed from cluster %x while this node was away (the cluster's member list no longer holds it)", id.MemberID, id.ClusterID)}
}

// membershipWatch rate-limits checkMembership while the local member is not
// healthy.
type membershipWatch struct {
	unhealthySince time.Time
	lastCheck      time.Time
}

// observe records one health observation and reports whether a membership
// check is due.
func (w *membershipWatch) observe(healthy bool, now time.Time) bool {
	if healthy {
		w.unhealthySince = time.Time{}
		return false
	}
	if w.unhealthySince.IsZero() {
		w.unhealthySince = now
	}
	if now.Sub(w.unhealthySince) < removedCheckAfter || now.Sub(w.lastCheck) < removedCheckAfter {
		return false
	}
	w.lastCheck = now
	return true
}

// rejoin stops the local etcd, moves the data dir aside and resets what the
// membership stages fill in, so the next pass enters the cluster anew.
func (a *Agent) rejoin(ctx context.Context, r *rejoinNeeded) error {
	a.log.Warn("moving data aside to rejoin as a new member", "reason", r.reason)
	a.setPhase(report.PhaseJoining, "moving data aside to rejoin as a new member: "+r.reason)
	if err := a.stopAndForgetEtcd(ctx); err != nil {
		return fmt.Errorf("stop etcd before moving its data aside: %w", err)
	}
	moved, err := datadir.MoveAside(a.cfg.Node.DataDir, r.reason, a.now())
	if err != nil {
		return err
	}
	a.rec.AddDecision(report.ActionMoveAside, fmt.Sprintf("%s; data kept at %s", r.reason, moved))
	a.log.Warn("data dir moved aside", "to", moved)
	return nil
}

// stopAndForgetEtcd stops the local etcd (a container is removed: the next
// member gets a new container spec anyway) and closes the clients to it,
// before its data dir is replaced (rejoin, recovery).
func (a *Agent) stopAndForgetEtcd(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, a.cfg.Podman.StopTimeout.D()+10*time.Second)
	defer cancel()
	if err := a.opts.Runtime.Remove(sctx); err != nil {
		return err
	}
	if a.client != nil {
		_ = a.client.Close()
		a.client = nil
	}
	if a.cluster != nil {
		_ = a.cluster.Close()
		a.cluster = nil
	}
	return nil
}

func asRejoin(err error) (*rejoinNeeded, bool) {
	var r *rejoinNeeded
	return r, errors.As(err, &r)
}
