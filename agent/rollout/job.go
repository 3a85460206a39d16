package rollout

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/node"
)

// What both restart jobs (CAJob, ChangeJob) share: the node they drive, the
// survey they plan on, and the leadership hand-over before a restart.

// Timing of a restart.
const (
	// LockWait is how long a node waits for the membership lock before it
	// leaves the restart to its next round (another node holds it).
	LockWait = 2 * time.Second
	// RestartReady bounds the wait for the restarted member to be healthy
	// and caught up; the lock is held meanwhile.
	RestartReady = 2 * time.Minute
	// readyPoll is how often a restarted member is probed while it comes
	// up, as the agent's ready stage does.
	readyPoll = 200 * time.Millisecond
	// moveLeaderTimeout bounds the leadership hand-over.
	moveLeaderTimeout = 10 * time.Second
)

// Node is what both restart jobs need of their node.
type Node interface {
	node.Node
	node.Clients
	node.Etcd
	// Observe publishes one health observation of the local member (the
	// status line and its problems), as the supervision loop does.
	Observe(h health.Health)
}

// survey is one look at the cluster cli reaches. The cluster client then
// talks to the other members' current addresses.
func survey(ctx context.Context, n Node, cli *clientv3.Client, selfPeerURL string) (cluster.Survey, error) {
	s, err := cluster.Take(ctx, cli, cluster.Options{Now: n.Now})
	if err != nil {
		return cluster.Survey{}, err
	}
	if eps := s.ClientURLs(selfPeerURL); len(eps) > 0 {
		cli.SetEndpoints(eps...)
	}
	return s, nil
}

// rebooting names the other nodes' members that hold a reboot slot.
func rebooting(ctx context.Context, cli *clientv3.Client, selfPeerURL string) ([]string, error) {
	holders, err := fleetlock.Read(ctx, cli)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range holders {
		if h.PeerURL != selfPeerURL {
			out = append(out, h.Member)
		}
	}
	return out, nil
}

// members is a survey as the planners read it: a member is healthy when it
// answered.
func members(s cluster.Survey) []membership.ClusterMember {
	out := make([]membership.ClusterMember, len(s.Members))
	for i, m := range s.Members {
		out[i] = membership.ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs,
			IsLearner: m.IsLearner, Healthy: m.Answered()}
	}
	return out
}

// quotas is a survey as MayRaiseQuotaUnlocked reads it.
func quotas(s cluster.Survey) []MemberQuota {
	out := make([]MemberQuota, len(s.Members))
	for i, m := range s.Members {
		out[i] = MemberQuota{ID: m.ID, Name: m.Name, Learner: m.IsLearner, Healthy: m.Answered(), CaughtUp: s.CaughtUp(m)}
		if m.Answered() {
			out[i].Quota = m.Quota
		}
	}
	return out
}

// moveLeadership hands leadership to another healthy voter before the local
// member restarts; etcd's graceful stop would too, but only after the
// followers noticed, and writes would wait on it meanwhile.
func moveLeadership(ctx context.Context, n Node, selfPeerURL string, ms []membership.ClusterMember) {
	to, ok := LeaderTarget(selfPeerURL, ms)
	if !ok {
		return
	}
	if err := cluster.MoveLeader(ctx, n.Local(), to, moveLeaderTimeout); err != nil {
		n.Logger().Warn("move leadership before the restart", "to", fmt.Sprintf("%x", to), "err", err)
		return
	}
	n.Logger().Info("moved leadership before the restart", "to", fmt.Sprintf("%x", to))
}
