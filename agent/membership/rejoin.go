package membership

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// A member that cannot use its data — removed from the cluster while it was
// down, or its cluster replaced by a recovery — moves the data aside (never
// deletes it) and enters the cluster again as a new member.

// Timing of the membership check.
const (
	// removedCheckAfter is how long the local member must have been unable
	// to become healthy before the agent asks the cluster whether it still
	// belongs to it (and how often it asks again).
	removedCheckAfter = 5 * time.Second
	// supersededCheckTimeout bounds reading the registry's recovery record.
	supersededCheckTimeout = 5 * time.Second
	// checkListTimeout bounds the member list of the check.
	checkListTimeout = 3 * time.Second
)

// Check asks the rest of the cluster, linearizably, whether this node's data
// still belongs to it: the member ID in the WAL must be in the member list
// of the cluster ID in the WAL. It returns a RejoinNeeded only on such an
// answer (or a recovery record that replaced the cluster, once that cluster
// has had no quorum for the grace); no answer, or a cluster without quorum,
// proves nothing. unhealthySince is when the local member last stopped
// being healthy (Watch).
func (j *Job) Check(ctx context.Context, unhealthySince time.Time) *RejoinNeeded {
	if _, leaving := sidefile.ReadLeaveMarker(j.dataDir()); leaving {
		return nil // leaving: the removal is expected, and `leave` finishes it
	}
	id, err := datadir.ReadIdentity(j.dataDir())
	if err != nil {
		j.n.Logger().Debug("membership check: read member identity", "err", err)
		return nil
	}
	if r, _ := j.n.SupersededByRecovery(ctx, supersededCheckTimeout, unhealthySince); r != nil {
		return r
	}
	self := j.selfClientURL()
	eps := slices.DeleteFunc(sidefile.ReadEndpoints(j.dataDir()), func(ep string) bool { return ep == self })
	if len(eps) == 0 {
		return nil
	}
	cli, err := j.n.Dial(eps)
	if err != nil {
		return nil
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, checkListTimeout)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		j.n.Logger().Debug("membership check: member list", "err", err)
		return nil
	}
	if got := list.Header.GetClusterId(); got != id.ClusterID {
		// Another cluster answers at the addresses this node knew. Proof
		// only when it records that it replaced this node's cluster (a
		// recovery); otherwise nothing is moved.
		if r := j.n.SupersededByAnswer(ctx, cli, id.ClusterID, unhealthySince); r != nil {
			return r
		}
		j.n.Logger().Warn("membership check: another cluster answers at this node's known endpoints",
			"data_cluster", fmt.Sprintf("%x", id.ClusterID), "answering_cluster", fmt.Sprintf("%x", got), "endpoints", eps)
		return nil
	}
	for _, m := range list.Members {
		if m.ID == id.MemberID {
			return nil
		}
	}
	return &RejoinNeeded{Reason: fmt.Sprintf("member %x was removed from cluster %x while this node was away (the cluster's member list no longer holds it)", id.MemberID, id.ClusterID)}
}

// Watch rate-limits Check while the local member is not healthy.
type Watch struct {
	unhealthySince time.Time
	lastCheck      time.Time
}

// Observe records one health observation and reports whether a membership
// check is due.
func (w *Watch) Observe(healthy bool, now time.Time) bool {
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

// UnhealthySince is when the current run of unhealthy observations began
// (zero while healthy).
func (w *Watch) UnhealthySince() time.Time { return w.unhealthySince }

// Rejoin stops the local etcd and moves the data dir aside, so the next
// pass of the lifecycle enters the cluster anew.
func (j *Job) Rejoin(ctx context.Context, r *RejoinNeeded) error {
	j.n.Logger().Warn("moving data aside to rejoin as a new member", "reason", r.Reason)
	j.n.SetStatus(report.PhaseJoining, "moving data aside to rejoin as a new member: "+r.Reason)
	if err := j.n.StopEtcd(ctx); err != nil {
		return fmt.Errorf("stop etcd before moving its data aside: %w", err)
	}
	moved, err := datadir.MoveAside(j.dataDir(), r.Reason, j.n.Now())
	if err != nil {
		return err
	}
	j.n.Recorder().AddDecision(report.ActionMoveAside, fmt.Sprintf("%s; data kept at %s", r.Reason, moved))
	j.n.Logger().Warn("data dir moved aside", "to", moved)
	return nil
}
