package agent

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// membershipNode is the agent as the membership job sees it.
type membershipNode struct{ *Agent }

var _ membership.Node = membershipNode{}

// Discovery implements membership.Node: the configured source (or the
// test's), built once.
func (n membershipNode) Discovery() (discovery.Source, error) {
	if n.disc != nil {
		return n.disc, nil
	}
	src := n.opts.Discovery
	if src == nil {
		var err error
		if src, err = newDiscovery(n.cfg, n.log); err != nil {
			return nil, err
		}
	}
	n.disc = src
	return src, nil
}

// EtcdRuntime implements membership.Node.
func (n membershipNode) EtcdRuntime() runtime.Runtime { return n.opts.Runtime }

// StopEtcd implements membership.Node.
func (n membershipNode) StopEtcd(ctx context.Context) error { return n.stopAndForgetEtcd(ctx) }

// SnapshotBeforeChange implements membership.Snapshotter.
func (n membershipNode) SnapshotBeforeChange(ctx context.Context, cli *clientv3.Client, change string) {
	n.snapshotBeforeChange(ctx, cli, change)
}

// SupersededBeforeRestart implements membership.Superseded.
func (n membershipNode) SupersededBeforeRestart(ctx context.Context) *membership.RejoinNeeded {
	return n.supersededBeforeRestart(ctx)
}

// SupersededByRecovery implements membership.Superseded.
func (n membershipNode) SupersededByRecovery(ctx context.Context, timeout time.Duration) (*membership.RejoinNeeded, bool) {
	return n.supersededByRecovery(ctx, timeout)
}

// SupersededByAnswer implements membership.Superseded.
func (n membershipNode) SupersededByAnswer(ctx context.Context, cli *clientv3.Client, dataClusterID uint64) *membership.RejoinNeeded {
	return n.supersededByAnswer(ctx, cli, dataClusterID)
}

func asRejoin(err error) (*membership.RejoinNeeded, bool) {
	var r *membership.RejoinNeeded
	return r, errors.As(err, &r)
}

// What the code not moved out of the agent yet (rolling changes, recovery)
// still calls; each forwards to the membership job or package cluster.

// gatherMembers is one survey as the membership planners see it.
func (a *Agent) gatherMembers(ctx context.Context, cli *clientv3.Client, _ map[uint64]membership.Outage) (membership.JoinFacts, error) {
	return a.members.Facts(ctx, cli)
}

// publishEndpoints records the cluster's client URLs in discovery.
func (a *Agent) publishEndpoints(ctx context.Context, eps []string) {
	a.members.PublishEndpoints(ctx, eps)
}

// endpointBook is a discovery source that keeps the cluster's client URLs.
type endpointBook = membership.EndpointBook

// clientURLFor turns a member's peer URL into its client URL.
func (a *Agent) clientURLFor(peerURL string) (string, error) {
	return cluster.ClientURLFor(peerURL, a.cfg.Etcd.ClientPort)
}

// dialable reports whether something accepts TCP connections at the URL.
func dialable(ctx context.Context, rawURL string) bool { return cluster.Dialable(ctx, rawURL) }

// memberProbeTimeout bounds one member's status query.
const memberProbeTimeout = cluster.MemberTimeout
