package hashcheck

import (
	"context"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Interval is how often the leader's agent compares every member's HashKV.
// Each comparison makes every member hash its whole database, so only the
// leader's agent does it, and not often.
const Interval = 10 * time.Minute

// Node is what the divergence job needs of its node: the local client and
// the local member's probe (whether it leads).
//
// The job compares with CompareHashKV rather than a cluster survey: package
// cluster imports this one (Options.HashKV).
type Node interface {
	node.Node
	node.Clients
	// Probe is node.Etcd's.
	Probe(ctx context.Context) health.Health
}

// Job is the divergence check: the leader's agent compares the members'
// HashKV at a common revision and reports replicas that diverged (etcd's
// own checks also run: the initial check at start, the compact-hash check).
type Job struct{ n Node }

// NewJob returns the divergence job of n; run it every Interval.
func NewJob(n Node) *Job { return &Job{n: n} }

// Run is one comparison, made only when the local member is ready and leads;
// a mismatch is logged and recorded as report.ActionDivergence. Run returns
// nil (CompareHashKV never fails as a whole; its Description says what went
// wrong).
func (j *Job) Run(ctx context.Context) error {
	if h := j.n.Probe(ctx); !h.Ready || !h.Leader {
		return nil
	}
	check := CompareHashKV(ctx, j.n.Local(), nil)
	if check.Mismatch {
		j.n.Logger().Error("replicas diverged", "check", check.Description)
		j.n.Recorder().AddDecision(report.ActionDivergence, check.Description)
		j.n.Publish()
		return nil
	}
	j.n.Logger().Debug("hashkv compared", "check", check.Description)
	return nil
}
