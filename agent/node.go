package agent

import (
	"log/slog"
	"time"

	"context"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/localetcd"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
)

// jobNode is the node as the agent's jobs see it: the node's configuration,
// identity and report (node.Node), and its local etcd member (node.Clients,
// node.Etcd). Nothing else of the agent is visible to a job.
type jobNode struct {
	a *Agent
	*localetcd.Member
}

var (
	_ node.Node          = jobNode{}
	_ node.Clients       = jobNode{}
	_ node.Etcd          = jobNode{}
	_ rollout.ChangeNode = jobNode{}
	_ fleetlock.Node     = jobNode{}
)

// Config implements node.Node.
func (n jobNode) Config() *config.Config { return n.a.cfg }

// Identity implements node.Node (set by the identity stage, before any job).
func (n jobNode) Identity() identity.Identity { return n.a.id }

// Logger implements node.Node.
func (n jobNode) Logger() *slog.Logger { return n.a.log }

// Now implements node.Node.
func (n jobNode) Now() time.Time { return n.a.now() }

// Recorder implements node.Node.
func (n jobNode) Recorder() *report.Recorder { return n.a.rec }

// Publish implements node.Node.
func (n jobNode) Publish() { n.a.flush() }

// SetStatus implements node.Node.
func (n jobNode) SetStatus(p report.Phase, msg string) { n.a.setPhase(p, msg) }

// Observe implements rollout.Node: publish a health observation at once.
func (n jobNode) Observe(h health.Health) { n.a.observe(h) }

// SnapshotBeforeChange implements membership.Snapshotter: a snapshot before
// this agent changes the membership; it never blocks the change.
func (n jobNode) SnapshotBeforeChange(ctx context.Context, cli *clientv3.Client, change string) {
	n.a.backups.BeforeChange(ctx, cli, change)
}
