package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// ErrSkipPromotion, returned by Options.JoinHook at membership.HookPromote,
// skips that promotion attempt (tests: a learner that never catches up).
var ErrSkipPromotion = membership.ErrSkipPromotion

// retry runs step until it succeeds or ctx ends, with capped backoff, saying
// what it waits for in STATUS=.
func (a *Agent) retry(ctx context.Context, what string, step func(context.Context) error) error {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 15 * time.Second}
	for {
		err := step(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		wait := bo.Next()
		a.log.Warn(what+" failed, retrying", "err", err, "in", wait)
		a.setPhase(a.rec.Snapshot().Phase, fmt.Sprintf("%s failed (%s), retrying in %s", what, health.ShortErr(err), wait.Round(time.Millisecond)))
		if err := cluster.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}
