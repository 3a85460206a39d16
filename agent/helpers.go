package agent

import (
	"context"
	"errors"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// ErrSkipPromotion, returned by Options.JoinHook at "promote", skips that
// promotion attempt (tests: a learner that never catches up).
var ErrSkipPromotion = errors.New("promotion skipped by the join hook")

// joinHook lets tests stop the agent at a step of the join.
func (a *Agent) joinHook(step string) error {
	if a.opts.JoinHook == nil {
		return nil
	}
	return a.opts.JoinHook(step)
}

func discovered(res discovery.Result) []membership.Member {
	var out []membership.Member
	for _, m := range res.Members {
		out = append(out, membership.Member{Name: m.Name, PeerURL: m.PeerURL})
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
