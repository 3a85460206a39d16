package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// The recovery record: claimed in the registry before the new cluster is
// built, updated with its ID before its first member starts, marked done and
// copied into the new cluster (keys.Recovery) once it is healthy.

// Deadlines of the record's reads and writes (each retried until then).
const (
	resumeRecordTimeout = 30 * time.Second
	claimTimeout        = 2 * time.Minute
	writeRecordTimeout  = 2 * time.Minute
	finishRecordTimeout = 30 * time.Second
)

// resumeRecord sets r for a recovery whose new member's data is in place:
// the registry's record when it is ours (best effort: the new member starts
// either way, and an unreadable registry only leaves the record as it was).
func (j *Job) resumeRecord(ctx context.Context, src discovery.Source, r *recovering) {
	n := j.n
	self := n.Identity().Name
	r.moved = true
	r.rec, _ = Claim(ClaimFacts{Self: self, Request: r.req, Now: n.Now()})
	r.rec.ClusterID, r.rec.Replaced = r.req.ClusterID, r.req.Replaced
	book, ok := src.(discovery.RecoveryBook)
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, resumeRecordTimeout)
	defer cancel()
	err := n.Retry(rctx, "reading the recovery record", func(ctx context.Context) error {
		rec, v, err := book.Recovery(ctx)
		if err == nil && rec != nil && rec.By == self && rec.Token == r.req.Token {
			r.book, r.rec, r.version = book, *rec, v
		}
		return err
	})
	if err != nil {
		n.Logger().Warn("resume the recovery without the registry's record", "err", err)
	}
}

// claim writes this node's claim on the recovery record, retrying while
// discovery does not answer; another node's claim refuses.
func (j *Job) claim(ctx context.Context, r *recovering, known, probed []string) error {
	n := j.n
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	for {
		var existing *discovery.Recovery
		var version int64
		err := n.Retry(ctx, "reading the recovery record", func(ctx context.Context) error {
			var err error
			existing, version, err = r.book.Recovery(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("discovery does not answer, so the recovery cannot be recorded where the other nodes look: %w", err)
		}
		rec, err := Claim(ClaimFacts{Existing: existing, Self: n.Identity().Name, Request: r.req, Known: known, Now: n.Now(), Checked: true, Probed: probed})
		if err != nil {
			return err
		}
		err = n.Retry(ctx, "recording the recovery", func(ctx context.Context) error {
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

// writeRecord replaces the registry's record with r.rec, if it is still
// ours.
func (j *Job) writeRecord(ctx context.Context, r *recovering) error {
	ctx, cancel := context.WithTimeout(ctx, writeRecordTimeout)
	defer cancel()
	return j.n.Retry(ctx, "updating the recovery record", func(ctx context.Context) error {
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

// Finish runs in the ready stage, once the local member is healthy (h): when
// a recovery waited for its new member, the recovery is recorded in the new
// cluster (for old members that reach it, also with static discovery) and as
// done in the registry, and the new endpoints are published. Failures are
// logged: the cluster runs either way. Without a recovery it does nothing.
func (j *Job) Finish(ctx context.Context, h health.Health) {
	j.mu.Lock()
	r := j.recovering
	j.recovering = nil
	j.mu.Unlock()
	if r == nil {
		return
	}
	n := j.n
	r.rec.State, r.rec.DoneAt = discovery.RecoveryDone, n.Now().UTC()
	r.rec.Endpoints = sortedCopy(h.Endpoints)
	b, _ := json.Marshal(r.rec)
	pctx, cancel := context.WithTimeout(ctx, finishRecordTimeout)
	err := n.Retry(pctx, "recording the recovery in the new cluster", func(ctx context.Context) error {
		_, err := n.Local().Put(ctx, keys.Recovery, string(b))
		return err
	})
	cancel()
	if err != nil {
		n.Logger().Warn("record the recovery in the new cluster", "err", err)
	}
	if r.book != nil {
		if err := j.writeRecord(ctx, r); err != nil {
			n.Logger().Warn("record the recovery as done in discovery", "err", err)
		}
	}
	n.PublishEndpoints(ctx, h.Endpoints)
	req := r.req
	req.State = Done
	req.ClusterID = r.rec.ClusterID
	req.Elapsed = n.Now().Sub(req.RequestedAt).Round(time.Millisecond).String()
	req.Progress = append(req.Progress, Line{At: n.Now().UTC(), Msg: fmt.Sprintf("new cluster %s healthy (%s): %s", r.rec.ClusterID, req.Elapsed, h.Message)})
	if err := WriteRequest(n.Config().Node.DataDir, req); err != nil {
		n.Logger().Warn("write recovery result", "err", err)
	}
	n.Recorder().AddDecision(report.ActionRecovered, fmt.Sprintf("new cluster %s healthy %s after the request", r.rec.ClusterID, req.Elapsed))
	n.Logger().Warn("recovered: new cluster healthy", "cluster", r.rec.ClusterID, "elapsed", req.Elapsed)
}

// trackTimeout bounds keeping the record's endpoints in step.
const trackTimeout = 10 * time.Second

// TrackEndpoints keeps the registry's recovery record naming the recovered
// cluster's members: it runs on a member that just joined (or formed) a
// cluster, and when the record names that cluster with other endpoints it
// records h's. A later recovery probes them before it may replace this
// cluster (barrier). Best effort: a failure leaves the older list, which a
// later joiner or this one's next start corrects.
func (j *Job) TrackEndpoints(ctx context.Context, h health.Health) {
	src, err := j.n.Discovery()
	if err != nil || h.ClusterID == 0 || len(h.Endpoints) == 0 {
		return
	}
	book, ok := src.(discovery.RecoveryBook)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, trackTimeout)
	defer cancel()
	rec, v, err := book.Recovery(ctx)
	if err != nil || rec == nil || rec.State != discovery.RecoveryDone || rec.ClusterID != hexID(h.ClusterID) {
		return
	}
	eps := sortedCopy(h.Endpoints)
	if slices.Equal(rec.Endpoints, eps) {
		return
	}
	rec.Endpoints = eps
	if err := book.SwapRecovery(ctx, *rec, v); err != nil {
		j.n.Logger().Warn("record the recovered cluster's endpoints in discovery", "err", err)
		return
	}
	j.n.Logger().Info("recorded the recovered cluster's endpoints in discovery", "endpoints", eps)
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
