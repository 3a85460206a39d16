package agent

import (
	"context"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
)

// The agent is the node of the restart jobs (package rollout).
var _ rollout.ChangeNode = (*Agent)(nil)

// Desired implements rollout.ChangeNode: the spec the config asks for.
func (a *Agent) Desired() etcdconf.Spec { return a.desired }

// Observe implements rollout.Node.
func (a *Agent) Observe(h health.Health) { a.observe(h) }

// checkEtcdChangeWhileNotReady lets a change roll out before READY: a
// member under a NOSPACE alarm is not ready, and the change that clears it
// (a higher quota) must still go. Every rollout.ChangeCheckInterval at most.
func (a *Agent) checkEtcdChangeWhileNotReady(ctx context.Context) {
	if a.now().Sub(a.lastChangeCheck) < rollout.ChangeCheckInterval {
		return
	}
	a.lastChangeCheck = a.now()
	_ = a.changes.Run(ctx) // in the report and the log
}
