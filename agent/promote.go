package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/report"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// promote asks the cluster to make this learner a voter; etcd refuses until
// the learner is in sync with the leader, which is reported as progress.
func (a *Agent) promote(ctx context.Context, id uint64) (promoted bool, progress string) {
	cli, err := a.clusterClient()
	if err != nil {
		return false, health.ShortErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	if _, err := cli.MemberPromote(ctx, id); err != nil {
		return false, a.catchUp(ctx, cli)
	}
	a.rec.AddDecision(report.ActionPromote, "learner caught up with the leader: promoted to voter")
	a.log.Info("promoted to voter", "id", fmt.Sprintf("%x", id))
	return true, "promoted to voter"
}

// catchUp describes how far the local learner is behind the leader.
func (a *Agent) catchUp(ctx context.Context, cli *clientv3.Client) string {
	local, err := a.client.Status(ctx, a.spec.ClientURL())
	if err != nil {
		return "catching up"
	}
	for _, ep := range cli.Endpoints() {
		st, err := cli.Status(ctx, ep)
		if err != nil || st.Header.MemberId != st.Leader {
			continue
		}
		if st.RaftIndex == 0 {
			break
		}
		pct := min(100, int(100*local.RaftAppliedIndex/st.RaftIndex))
		return fmt.Sprintf("catching up %d%% (applied %d of leader's %d)", pct, local.RaftAppliedIndex, st.RaftIndex)
	}
	return fmt.Sprintf("catching up (applied %d)", local.RaftAppliedIndex)
}

// abandonLearner removes this node's learner after it failed to catch up
// within learnerCatchUpTimeout, under the membership lock; the node then
// moves its data aside and joins again.
func (a *Agent) abandonLearner(ctx context.Context, id uint64) error {
	cli, err := a.clusterClient()
	if err != nil {
		return fmt.Errorf("abandon learner: %w", err)
	}
	lock, err := lockMembership(ctx, cli, 30*time.Second)
	if err != nil {
		return fmt.Errorf("abandon learner: %w", err)
	}
	defer lock.release(a.log)
	a.snapshotBeforeChange(ctx, cli, "removing learner "+a.id.Name)
	if err := lock.check(ctx); err != nil {
		return fmt.Errorf("abandon learner: %w", err)
	}
	reason := fmt.Sprintf("learner %x not caught up after %s", id, a.opts.LearnerCatchUpTimeout)
	if err := a.removeMember(ctx, cli, id, func(msg string) { a.setPhase(report.PhaseLearner, "removing this learner: "+msg) }); err != nil {
		return fmt.Errorf("abandon learner: remove %x: %w", id, err)
	}
	a.rec.AddDecision(report.ActionRemoveMember, reason+": removed to join again")
	return &rejoinNeeded{reason: reason}
}
