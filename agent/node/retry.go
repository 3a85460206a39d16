package node

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// Retry runs step until it succeeds or ctx ends, with capped, jittered
// backoff, saying in the log and in STATUS= what it waits for.
func Retry(ctx context.Context, n Node, what string, step func(context.Context) error) error {
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
		n.Logger().Warn(what+" failed, retrying", "err", err, "in", wait)
		n.SetStatus(n.Recorder().Snapshot().Phase, fmt.Sprintf("%s failed (%s), retrying in %s", what, health.ShortErr(err), wait.Round(time.Millisecond)))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
