package agent

import (
	"context"

	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/node"
)

// ErrSkipPromotion, returned by Options.JoinHook at membership.HookPromote,
// skips that promotion attempt (tests: a learner that never catches up).
var ErrSkipPromotion = membership.ErrSkipPromotion

// waitRuntime retries, with capped backoff, until the etcd runtime answers.
// It runs before a founder records its start in discovery: a founder whose
// etcd start failed because the runtime did not answer cannot prove its etcd
// never ran, so it keeps its started record and is fenced for good — at
// boot, where the user's podman.socket may come up after the agent, that
// fenced every founder of a new cluster (test/node). Waiting here also keeps
// a late socket from failing the unit into its start limit.
func (a *Agent) waitRuntime(ctx context.Context) error {
	return node.Retry(ctx, a.node, "connecting to the etcd runtime", a.opts.Runtime.Prepare)
}
