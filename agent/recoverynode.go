package agent

import (
	"context"
	"errors"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// recoveryNode is the agent as the recovery job sees it.
type recoveryNode struct{ jobNode }

var _ recovery.Node = recoveryNode{}

// Member implements recovery.Requester.
func (n recoveryNode) Member() etcdconf.Spec { return n.a.specBase() }

// Discovery implements recovery.Requester.
func (n recoveryNode) Discovery() (discovery.Source, error) { return n.a.discovery() }

// Retry implements recovery.Node.
func (n recoveryNode) Retry(ctx context.Context, what string, step func(context.Context) error) error {
	return node.Retry(ctx, n, what, step)
}

// StopEtcd implements recovery.Node.
func (n recoveryNode) StopEtcd(ctx context.Context) error { return n.StopAndForget(ctx) }

// PublishEndpoints implements recovery.Node: to the configured discovery,
// also when this pass did not consult it.
func (n recoveryNode) PublishEndpoints(ctx context.Context, eps []string) {
	n.a.members.PublishEndpoints(ctx, eps)
}

// RecoveryRequester is this node as `etcd-agent recover` sees it, beside the
// running agent (recovery.RequestRecovery). It reads the node's identity and
// publishes nothing: the status file is the running agent's.
func (a *Agent) RecoveryRequester(ctx context.Context) (recovery.Requester, error) {
	id, err := a.opts.Identity.Identity(ctx)
	if err != nil {
		return nil, err
	}
	a.id = id
	return recoveryNode{a.node}, nil
}

// asRecover is the recovery request that ended a pass.
func asRecover(err error) (*recovery.Needed, bool) {
	var r *recovery.Needed
	return r, errors.As(err, &r)
}
