package membership

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// A joined node's member starts as a learner; the ready stage promotes it
// once it caught up, or gives up on it after LearnerCatchUpTimeout.

// Promote asks the cluster to make this learner (id) a voter; etcd refuses
// until the learner is in sync with the leader, which is reported as
// progress. err is only a join hook's (tests).
func (j *Job) Promote(ctx context.Context, id uint64) (promoted bool, progress string, err error) {
	switch err := j.hook(HookPromote); {
	case errors.Is(err, ErrSkipPromotion):
		return false, "catching up", nil
	case err != nil:
		return false, "", err
	}
	cli, err := j.n.Cluster()
	if err != nil {
		return false, health.ShortErr(err), nil
	}
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	if _, err := cli.MemberPromote(ctx, id); err != nil {
		return false, j.catchUp(ctx, cli), nil
	}
	j.n.Recorder().AddDecision(report.ActionPromote, "learner caught up with the leader: promoted to voter")
	j.n.Logger().Info("promoted to voter", "id", fmt.Sprintf("%x", id))
	return true, "promoted to voter", nil
}

// catchUp describes how far the local learner is behind the leader.
func (j *Job) catchUp(ctx context.Context, cli *clientv3.Client) string {
	lc := j.n.Local()
	if lc == nil {
		return "catching up"
	}
	local, err := lc.Status(ctx, j.selfClientURL())
	if err != nil {
		return "catching up"
	}
	if s, err := cluster.Take(ctx, cli, cluster.Options{Now: j.n.Now}); err == nil {
		if c := s.Committed(); c > 0 {
			pct := min(100, int(100*local.RaftAppliedIndex/c))
			return fmt.Sprintf("catching up %d%% (applied %d of leader's %d)", pct, local.RaftAppliedIndex, c)
		}
	}
	return fmt.Sprintf("catching up (applied %d)", local.RaftAppliedIndex)
}

// abandonLockWait bounds the wait for the membership lock before a learner
// removes itself.
const abandonLockWait = 30 * time.Second

// AbandonLearner removes this node's learner (id) after it failed to catch
// up within LearnerCatchUpTimeout, under the membership lock, and returns the
// RejoinNeeded that moves the data aside and joins again. The snapshot
// before the removal can take minutes: after it, the learner plans again on
// a fresh survey (PlanAbandon) and returns nil when it was promoted
// meanwhile.
func (j *Job) AbandonLearner(ctx context.Context, id uint64) error {
	cli, err := j.n.Cluster()
	if err != nil {
		return fmt.Errorf("abandon learner: %w", err)
	}
	lock, err := cluster.TakeLock(ctx, cli, abandonLockWait, j.n.Logger())
	if err != nil {
		return fmt.Errorf("abandon learner: %w", err)
	}
	defer lock.Release()
	facts, err := j.snapshotAndSurvey(ctx, cli, map[uint64]Outage{}, "removing learner "+j.n.Identity().Name)
	if err != nil {
		return fmt.Errorf("abandon learner: %w", err)
	}
	reason := fmt.Sprintf("learner %x not caught up after %s", id, j.opts.LearnerCatchUpTimeout)
	switch kind, why := PlanAbandon(id, facts.Members); kind {
	case AbandonKeep:
		j.n.Logger().Info("not giving up the learner", "reason", why)
		return nil
	case AbandonGone:
		j.n.Logger().Warn("learner already removed", "reason", why)
		return &RejoinNeeded{Reason: reason + "; " + why}
	}
	if err := lock.Check(ctx); err != nil {
		return fmt.Errorf("abandon learner: %w", err)
	}
	if err := cluster.RemoveMember(ctx, cli, id, func(msg string) {
		j.n.SetStatus(report.PhaseLearner, "removing this learner: "+msg)
	}); err != nil {
		return fmt.Errorf("abandon learner: remove %x: %w", id, err)
	}
	j.n.Recorder().AddDecision(report.ActionRemoveMember, reason+": removed to join again")
	return &RejoinNeeded{Reason: reason}
}
