package schedule

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/retention"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Timing of the snapshot job.
const (
	// snapshotTimeout bounds one snapshot with its uploads (a large
	// database to a slow store); verifyTimeout one verification.
	snapshotTimeout = 30 * time.Minute
	verifyTimeout   = 30 * time.Minute
	// preChangeTimeout bounds the snapshot taken before a membership
	// change: the change waits for it, and a failed snapshot never blocks
	// the cluster's repair.
	preChangeTimeout = 5 * time.Minute
)

// RoundEvery is how often the snapshot job looks at the schedule: a few
// times per interval (so a slot left by a dead agent is taken soon), at most
// each minute, at least each second.
func RoundEvery(interval time.Duration) time.Duration {
	return max(time.Second, min(time.Minute, interval/4))
}

// Node is what the snapshot job needs of its node: its config (Backup),
// identity, log, clock and report, the local client (the scheduled snapshot
// and the shared record) and Dial (the member a pre-change snapshot is taken
// from).
type Node interface {
	node.Node
	node.Clients
}

// Job is the scheduled snapshot job (one snapshot per interval cluster-wide,
// Run) and the snapshot before a membership change (BeforeChange).
type Job struct {
	n Node

	mu       sync.Mutex // BeforeChange runs beside Run
	src      backup.Sources
	srcOK    bool
	localErr string
}

// NewJob returns the snapshot job of n.
func NewJob(n Node) *Job { return &Job{n: n} }

// Every is how often Run should be called: RoundEvery of the configured
// interval, 0 when backups are disabled (never).
func (j *Job) Every() time.Duration {
	cfg := j.n.Config()
	if cfg.Backup.Disabled {
		return 0
	}
	return RoundEvery(cfg.Backup.Interval.D())
}

// Run is one round: read the shared record (for status); when this
// interval's slot is still due and this node is a healthy voter, claim it,
// take the snapshot from the local member, apply retention, verify the
// newest snapshot when that is due, and record the outcome for every agent.
// Rounds must not overlap. The outcome goes to the log and the report; Run
// returns nil.
func (j *Job) Run(ctx context.Context) error {
	cli := j.n.Local()
	if j.n.Config().Backup.Disabled || cli == nil {
		return nil
	}
	log := j.n.Logger()
	rec, err := j.readRecord(ctx, cli)
	if err != nil {
		j.publish(rec, err)
		return nil
	}
	j.publish(rec, nil)
	slot := SlotOf(j.n.Now(), j.n.Config().Backup.Interval.D())
	if r := j.n.Recorder().Snapshot(); !Due(rec, slot) || !r.Ready || r.Phase != report.PhaseHealthy {
		return nil
	}
	claim, won, err := TryClaim(ctx, cli, slot, j.n.Identity().Name)
	if err != nil || !won {
		if err != nil {
			log.Debug("claim snapshot slot", "err", err)
		}
		return nil
	}
	defer claim.Release()
	log.Info("snapshot slot won", "slot", slot)
	m, err := j.take(ctx, cli, cli, "scheduled", slot)
	if err == nil || m.Name != "" {
		j.prune(ctx, cli)
	}
	if !claim.Alive() {
		log.Warn("snapshot claim lease ended during the snapshot: another agent may have taken this slot too")
	}
	if rec, err := j.readRecord(ctx, cli); err == nil && j.verifyDue(rec) {
		j.verifyNewest(ctx, cli)
	}
	if rec, err := j.readRecord(ctx, cli); err == nil {
		j.publish(rec, nil)
	}
	return nil
}

// BeforeChange takes a snapshot before this agent changes the membership
// (cli reaches the cluster; a voter that answers is the source, followers
// first). It never blocks the change: a failure is logged and shown in
// status, and the change goes on.
func (j *Job) BeforeChange(ctx context.Context, cli *clientv3.Client, change string) {
	if j.n.Config().Backup.Disabled {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, preChangeTimeout)
	defer cancel()
	log := j.n.Logger()
	log.Info("snapshot before a membership change", "change", change)
	ep, err := snapshotSource(ctx, cli, j.n.Now)
	if err == nil {
		var one *clientv3.Client
		if one, err = j.n.Dial([]string{ep}); err == nil {
			defer one.Close()
			_, err = j.take(ctx, one, cli, "before "+change, 0)
		}
	}
	if err != nil {
		log.Error("snapshot before a membership change failed; changing anyway", "change", change, "err", err)
		j.setLocalErr(err)
	}
}

// readRecord reads the shared record within health.Timeout.
func (j *Job) readRecord(ctx context.Context, cli *clientv3.Client) (report.Backup, error) {
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	return Read(ctx, cli)
}

// take snapshots the member source reaches (its first endpoint), puts it
// in every store, and records the outcome in the cluster through cli
// (slot > 0: the slot is handled, success or not; a failure is retried next
// interval).
func (j *Job) take(ctx context.Context, source, cli *clientv3.Client, reason string, slot int64) (backup.Meta, error) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	cfg, log, self := j.n.Config(), j.n.Logger(), j.n.Identity().Name
	src, err := j.sources(ctx)
	var m backup.Meta
	var where []string
	if err == nil {
		m, where, err = backup.Take(ctx, backup.SaveOptions{
			Client: source, Dir: cfg.Backup.Dir, Cluster: cfg.Cluster.Name,
			TakenBy: self, Reason: reason, Now: j.n.Now,
		}, src.Stores)
	}
	now := j.n.Now().UTC()
	if err != nil {
		log.Error("snapshot failed", "reason", reason, "stored", where, "err", err)
		j.n.Recorder().AddDecision(report.ActionSnapshotFailed, reason+": "+err.Error())
	} else {
		log.Info("snapshot taken", "name", m.Name, "revision", m.Revision, "size", m.Size, "where", where, "reason", reason)
	}
	j.setLocalErr(err)
	uerr := Update(ctx, cli, func(r *report.Backup) {
		r.Interval = cfg.Backup.Interval.D()
		if slot > r.Slot {
			r.Slot = slot
		}
		if m.Name != "" && len(where) > 0 {
			r.Last = &report.Snapshot{Name: m.Name, Revision: m.Revision, Time: m.Time, TakenBy: m.TakenBy, Reason: reason, Where: where, Size: m.Size}
		}
		if err != nil {
			r.Failure = &report.Failure{At: now, By: self, Error: err.Error()}
		} else {
			r.Failure = nil
		}
	})
	if uerr != nil {
		log.Warn("record snapshot outcome in the cluster", "err", uerr)
	}
	return m, err
}

// snapshotSource picks the member to snapshot from one survey of the
// cluster cli reaches: a voter that answered, a follower rather than the
// leader (the leader has more to do).
func snapshotSource(ctx context.Context, cli *clientv3.Client, now func() time.Time) (string, error) {
	s, err := cluster.Take(ctx, cli, cluster.Options{Now: now})
	if err != nil {
		return "", fmt.Errorf("find a voter to take a snapshot from: %w", err)
	}
	var leader string
	var errs []error
	for _, m := range s.Voters() {
		switch {
		case !m.Answered():
			errs = append(errs, fmt.Errorf("%s: %s", s.Name(m.ID), m.Err))
		case m.Leader == m.ID:
			leader = m.Endpoint
		default:
			return m.Endpoint, nil
		}
	}
	if leader != "" {
		return leader, nil
	}
	return "", fmt.Errorf("no voter answers to take a snapshot from: %w", errors.Join(errs...))
}

// sources opens the stores once (a failure is retried next time).
func (j *Job) sources(ctx context.Context) (backup.Sources, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.srcOK {
		return j.src, nil
	}
	cfg := j.n.Config()
	src, err := backup.OpenSources(ctx, cfg)
	if err != nil {
		return src, fmt.Errorf("open snapshot stores: %w", err)
	}
	// Leftovers of a crash mid-snapshot can be as large as the database.
	store.Local{Dir: cfg.Backup.Dir}.Clean(time.Hour, j.n.Now())
	j.src, j.srcOK = src, true
	return src, nil
}

// prune applies retention to every store, keeping the newest verified
// snapshot whatever its age and whatever failed since (Protected). Without
// the record it does nothing: what to keep is not known.
func (j *Job) prune(ctx context.Context, cli *clientv3.Client) {
	src, err := j.sources(ctx)
	if err != nil {
		return
	}
	log := j.n.Logger()
	rec, err := j.readRecord(ctx, cli)
	if err != nil {
		log.Warn("snapshot retention skipped: the record of the newest verified snapshot cannot be read", "err", err)
		return
	}
	protect := Protected(rec)
	r := j.n.Config().Backup.Retention
	p := retention.Policy{Hourly: r.Hourly, Daily: r.Daily, Weekly: r.Weekly}
	for _, st := range src.Stores {
		deleted, err := backup.Prune(ctx, st, p, j.n.Now(), protect...)
		if err != nil {
			log.Warn("apply snapshot retention", "store", st.Where(), "err", err)
		}
		if len(deleted) > 0 {
			log.Info("snapshots deleted by retention", "store", st.Where(), "names", deleted)
		}
	}
}

// verifyDue: the newest snapshot is verified once per verify interval.
func (j *Job) verifyDue(rec report.Backup) bool {
	if rec.Last == nil {
		return false
	}
	v := rec.Verification
	return v == nil || j.n.Now().Sub(v.At) >= j.n.Config().Backup.VerifyInterval.D()
}

// verifyNewest fetches the newest snapshot (from S3 when configured: the
// copy a recovery would use) and restores it into a throw-away member.
func (j *Job) verifyNewest(ctx context.Context, cli *clientv3.Client) {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	src, err := j.sources(ctx)
	if err != nil {
		return
	}
	cfg, log, id := j.n.Config(), j.n.Logger(), j.n.Identity()
	file := filepath.Join(cfg.Backup.Dir, ".tmp-verify.db")
	defer os.Remove(file)
	st, m, err := backup.Newest(ctx, src)
	name := m.Name
	if err == nil {
		m, err = backup.FetchFrom(ctx, st, name, file)
	}
	if err == nil {
		_, err = backup.Verify(ctx, file, m, backup.VerifyOptions{Host: verifyHost(id.PrivateIP), TempDir: cfg.Backup.Dir, Logger: log})
	}
	v := &report.Verification{Name: name, At: j.n.Now().UTC(), By: id.Name, OK: err == nil}
	if err != nil {
		v.Error = err.Error()
		log.Error("snapshot verification failed", "name", name, "err", err)
		j.n.Recorder().AddDecision(report.ActionSnapshotVerifyFailed, err.Error())
	} else {
		log.Info("snapshot verified", "name", name, "revision", m.Revision)
	}
	if err := Update(ctx, cli, func(r *report.Backup) {
		r.Verification = v
		if v.OK {
			r.Verified = v
		}
	}); err != nil {
		log.Warn("record snapshot verification", "err", err)
	}
}

// verifyHost is where a throw-away member listens: the node's own address
// when it is a loopback one (local mode, tests: each node its own), else
// 127.0.0.1.
func verifyHost(ip netip.Addr) string {
	if ip.IsLoopback() {
		return ip.String()
	}
	return "127.0.0.1"
}

func (j *Job) setLocalErr(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.localErr = ""
	if err != nil {
		j.localErr = err.Error()
	}
}

// publish puts the shared record into this node's report.
func (j *Job) publish(rec report.Backup, readErr error) {
	j.mu.Lock()
	local := j.localErr
	j.mu.Unlock()
	if readErr != nil {
		local = readErr.Error()
	}
	rec.Interval = j.n.Config().Backup.Interval.D()
	rec.LocalError = local
	j.n.Recorder().Update(func(r *report.NodeReport) { r.Backup = &rec })
}
