package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// The recovery record: claimed in the registry before the new cluster is
// built, updated with its ID before its first member starts, marked done and
// copied into the new cluster once it is healthy.

// resumeRecord sets r for a recovery whose new member's data is in place:
// the registry's record when it is ours (best effort: the new member starts
// either way, and an unreadable registry only leaves the record as it was).
func (a *Agent) resumeRecord(ctx context.Context, src discovery.Source, r *recovering) {
	r.moved = true
	r.rec, _ = recovery.Claim(recovery.ClaimFacts{Self: a.id.Name, Request: r.req, Now: a.now()})
	r.rec.ClusterID, r.rec.Replaced = r.req.ClusterID, r.req.Replaced
	book, ok := src.(discovery.RecoveryBook)
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := a.retry(rctx, "reading the recovery record", func(ctx context.Context) error {
		rec, v, err := book.Recovery(ctx)
		if err == nil && rec != nil && rec.By == a.id.Name && rec.Token == r.req.Token {
			r.book, r.rec, r.version = book, *rec, v
		}
		return err
	})
	if err != nil {
		a.log.Warn("resume the recovery without the registry's record", "err", err)
	}
}

// claimRecovery writes this node's claim on the recovery record, retrying
// while discovery does not answer; another node's claim refuses.
func (a *Agent) claimRecovery(ctx context.Context, r *recovering, known []string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		var existing *discovery.Recovery
		var version int64
		err := a.retry(ctx, "reading the recovery record", func(ctx context.Context) error {
			var err error
			existing, version, err = r.book.Recovery(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("discovery does not answer, so the recovery cannot be recorded where the other nodes look: %w", err)
		}
		rec, err := recovery.Claim(recovery.ClaimFacts{Existing: existing, Self: a.id.Name, Request: r.req, Known: known, Now: a.now()})
		if err != nil {
			return err
		}
		err = a.retry(ctx, "recording the recovery", func(ctx context.Context) error {
			err := r.book.SwapRecovery(ctx, rec, version)
			if errors.Is(err, discovery.ErrRecoveryChanged) {
				return nil // handled below
			}
			return err
		})
		if err != nil {
			return err
		}
		if cur, v, err := r.book.Recovery(ctx); err == nil && cur != nil && cur.By == rec.By && cur.Token == rec.Token {
			r.rec, r.version = *cur, v
			return nil
		}
		// Changed in between: read it again and decide again.
	}
}

// writeRecoveryRecord replaces the registry's record with r.rec, if it is
// still ours.
func (a *Agent) writeRecoveryRecord(ctx context.Context, r *recovering) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return a.retry(ctx, "updating the recovery record", func(ctx context.Context) error {
		if err := r.book.SwapRecovery(ctx, r.rec, r.version); err != nil {
			if errors.Is(err, discovery.ErrRecoveryChanged) {
				return fmt.Errorf("%w: stopping this recovery", err)
			}
			return err
		}
		_, v, err := r.book.Recovery(ctx)
		if err == nil {
			r.version = v
		}
		return err
	})
}

// finishRecovery runs once the new member is healthy: the recovery is
// recorded in the new cluster (for old members that reach it, also with
// static discovery) and as done in the registry, and the new endpoints are
// published. Failures are logged: the cluster runs either way.
func (a *Agent) finishRecovery(ctx context.Context, h health.Health) {
	r := a.recovering
	a.recovering = nil
	r.rec.State, r.rec.DoneAt = discovery.RecoveryDone, a.now().UTC()
	b, _ := json.Marshal(r.rec)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := a.retry(pctx, "recording the recovery in the new cluster", func(ctx context.Context) error {
		_, err := a.client.Put(ctx, recoveryKey, string(b))
		return err
	})
	cancel()
	if err != nil {
		a.log.Warn("record the recovery in the new cluster", "err", err)
	}
	if r.book != nil {
		if err := a.writeRecoveryRecord(ctx, r); err != nil {
			a.log.Warn("record the recovery as done in discovery", "err", err)
		}
	}
	if a.disc == nil {
		a.disc, _ = a.discoverySource()
	}
	a.publishEndpoints(ctx, h.Endpoints)
	req := r.req
	req.State = recovery.Done
	req.ClusterID = r.rec.ClusterID
	req.Elapsed = a.now().Sub(req.RequestedAt).Round(time.Millisecond).String()
	req.Progress = append(req.Progress, recovery.Line{At: a.now().UTC(), Msg: fmt.Sprintf("new cluster %s healthy (%s): %s", r.rec.ClusterID, req.Elapsed, h.Message)})
	if err := recovery.WriteRequest(a.cfg.Node.DataDir, req); err != nil {
		a.log.Warn("write recovery result", "err", err)
	}
	a.rec.AddDecision(report.ActionRecovered, fmt.Sprintf("new cluster %s healthy %s after the request", r.rec.ClusterID, req.Elapsed))
	a.log.Warn("recovered: new cluster healthy", "cluster", r.rec.ClusterID, "elapsed", req.Elapsed)
}

// recoveryKey holds the recovery record inside the recovered cluster.
const recoveryKey = "/_etcd-agent/recovery"
