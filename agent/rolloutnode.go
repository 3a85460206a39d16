package agent

import (
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
)

// The agent is the node of the restart jobs (package rollout).
var _ rollout.ChangeNode = (*Agent)(nil)

// Desired implements rollout.ChangeNode: the spec the config asks for.
func (a *Agent) Desired() etcdconf.Spec {
	a.specMu.Lock()
	defer a.specMu.Unlock()
	return a.desired
}

// Observe implements rollout.Node.
func (a *Agent) Observe(h health.Health) { a.observe(h) }
