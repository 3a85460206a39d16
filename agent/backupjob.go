package agent

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
	"github.com/etcd-agent/etcd-agent/agent/backup/schedule"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/agent/health"
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

// backupJob is the scheduled snapshot job's state (see backupRound).
type backupJob struct {
	mu       sync.Mutex
	src      backup.Sources
	srcOK    bool
	localErr string
}

// backupRound: read the shared record (for status); when this interval's
// slot is still due and this node is a healthy voter, claim it, take the
// snapshot from the local member, apply retention, verify the newest
// snapshot when that is due, and record the outcome for every agent.
func (a *Agent) backupRound(ctx context.Context) {
	rec, err := a.readBackupRecord(ctx, a.client)
	if err != nil {
		a.publishBackup(rec, err)
		return
	}
	a.publishBackup(rec, nil)
	slot := schedule.SlotOf(a.now(), a.cfg.Backup.Interval.D())
	if !schedule.Due(rec, slot) || !a.Report().Ready || a.Report().Phase != report.PhaseHealthy {
		return
	}
	claim, won, err := schedule.TryClaim(ctx, a.client, slot, a.id.Name)
	if err != nil || !won {
		if err != nil {
			a.log.Debug("claim snapshot slot", "err", err)
		}
		return
	}
	defer claim.Release()
	a.log.Info("snapshot slot won", "slot", slot)
	m, err := a.takeSnapshot(ctx, a.client, a.client, "scheduled", slot)
	if err == nil || m.Name != "" {
		a.pruneSnapshots(ctx)
	}
	if !claim.Alive() {
		a.log.Warn("snapshot claim lease ended during the snapshot: another agent may have taken this slot too")
	}
	if rec, err := a.readBackupRecord(ctx, a.client); err == nil && a.verifyDue(rec) {
		a.verifyNewest(ctx)
	}
	if rec, err := a.readBackupRecord(ctx, a.client); err == nil {
		a.publishBackup(rec, nil)
	}
}

// readBackupRecord reads the shared record within health.Timeout.
func (a *Agent) readBackupRecord(ctx context.Context, cli *clientv3.Client) (report.Backup, error) {
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	return schedule.Read(ctx, cli)
}

// takeSnapshot snapshots the member source reaches (its first endpoint),
// puts it in every store, and records the outcome in the cluster through
// cluster (slot > 0: the slot is handled, success or not; a failure is
// retried next interval).
func (a *Agent) takeSnapshot(ctx context.Context, source, cluster *clientv3.Client, reason string, slot int64) (backup.Meta, error) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	src, err := a.backupSources(ctx)
	var m backup.Meta
	var where []string
	if err == nil {
		m, where, err = backup.Take(ctx, backup.SaveOptions{
			Client: source, Dir: a.cfg.Backup.Dir, Cluster: a.cfg.Cluster.Name,
			TakenBy: a.id.Name, Reason: reason, Now: a.now,
		}, src.Stores)
	}
	now := a.now().UTC()
	if err != nil {
		a.log.Error("snapshot failed", "reason", reason, "stored", where, "err", err)
		a.rec.AddDecision(report.ActionSnapshotFailed, reason+": "+err.Error())
	} else {
		a.log.Info("snapshot taken", "name", m.Name, "revision", m.Revision, "size", m.Size, "where", where, "reason", reason)
	}
	a.setBackupLocalErr(err)
	uerr := schedule.Update(ctx, cluster, func(r *report.Backup) {
		r.Interval = a.cfg.Backup.Interval.D()
		if slot > r.Slot {
			r.Slot = slot
		}
		if m.Name != "" && len(where) > 0 {
			r.Last = &report.Snapshot{Name: m.Name, Revision: m.Revision, Time: m.Time, TakenBy: m.TakenBy, Reason: reason, Where: where, Size: m.Size}
		}
		if err != nil {
			r.Failure = &report.Failure{At: now, By: a.id.Name, Error: err.Error()}
		} else {
			r.Failure = nil
		}
	})
	if uerr != nil {
		a.log.Warn("record snapshot outcome in the cluster", "err", uerr)
	}
	return m, err
}

// snapshotBeforeChange takes a snapshot before this agent changes the
// membership (cli reaches the cluster; a voter that answers is the source,
// followers first). It never blocks the change: a failure is logged and
// shown in status, and the change goes on.
func (a *Agent) snapshotBeforeChange(ctx context.Context, cli *clientv3.Client, change string) {
	if a.cfg.Backup.Disabled {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, preChangeTimeout)
	defer cancel()
	a.log.Info("snapshot before a membership change", "change", change)
	ep, err := snapshotSource(ctx, cli)
	if err == nil {
		var one *clientv3.Client
		if one, err = a.newClusterClient([]string{ep}); err == nil {
			defer one.Close()
			_, err = a.takeSnapshot(ctx, one, cli, "before "+change, 0)
		}
	}
	if err != nil {
		a.log.Error("snapshot before a membership change failed; changing anyway", "change", change, "err", err)
		a.setBackupLocalErr(err)
	}
}

// snapshotSource picks the member to snapshot: a voter that answers,
// a follower rather than the leader (the leader has more to do).
func snapshotSource(ctx context.Context, cli *clientv3.Client) (string, error) {
	var leader string
	var errs []error
	for _, ep := range cli.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, health.Timeout)
		st, err := cli.Status(sctx, ep)
		cancel()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		case st.IsLearner:
		case st.Leader == st.Header.MemberId:
			leader = ep
		default:
			return ep, nil
		}
	}
	if leader != "" {
		return leader, nil
	}
	return "", fmt.Errorf("no voter answers to take a snapshot from: %w", errors.Join(errs...))
}

// backupSources opens the stores once (a failure is retried next time).
func (a *Agent) backupSources(ctx context.Context) (backup.Sources, error) {
	a.backups.mu.Lock()
	defer a.backups.mu.Unlock()
	if a.backups.srcOK {
		return a.backups.src, nil
	}
	src, err := backup.OpenSources(ctx, a.cfg)
	if err != nil {
		return src, fmt.Errorf("open snapshot stores: %w", err)
	}
	// Leftovers of a crash mid-snapshot can be as large as the database.
	store.Local{Dir: a.cfg.Backup.Dir}.Clean(time.Hour, a.now())
	a.backups.src, a.backups.srcOK = src, true
	return src, nil
}

// pruneSnapshots applies retention to every store, keeping the newest
// verified snapshot whatever its age.
func (a *Agent) pruneSnapshots(ctx context.Context) {
	src, err := a.backupSources(ctx)
	if err != nil {
		return
	}
	var protect []string
	if rec, err := a.readBackupRecord(ctx, a.client); err == nil && rec.Verification != nil && rec.Verification.OK {
		protect = append(protect, rec.Verification.Name)
	}
	r := a.cfg.Backup.Retention
	p := retention.Policy{Hourly: r.Hourly, Daily: r.Daily, Weekly: r.Weekly}
	for _, st := range src.Stores {
		deleted, err := backup.Prune(ctx, st, p, a.now(), protect...)
		if err != nil {
			a.log.Warn("apply snapshot retention", "store", st.Where(), "err", err)
		}
		if len(deleted) > 0 {
			a.log.Info("snapshots deleted by retention", "store", st.Where(), "names", deleted)
		}
	}
}

// verifyDue: the newest snapshot is verified once per verifyInterval.
func (a *Agent) verifyDue(rec report.Backup) bool {
	if rec.Last == nil {
		return false
	}
	v := rec.Verification
	return v == nil || a.now().Sub(v.At) >= a.cfg.Backup.VerifyInterval.D()
}

// verifyNewest fetches the newest snapshot (from S3 when configured: the
// copy a recovery would use) and restores it into a throw-away member.
func (a *Agent) verifyNewest(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	src, err := a.backupSources(ctx)
	if err != nil {
		return
	}
	file := filepath.Join(a.cfg.Backup.Dir, ".tmp-verify.db")
	defer os.Remove(file)
	_, name, err := backup.Newest(ctx, src.Stores)
	var m backup.Meta
	if err == nil {
		m, err = backup.Fetch(ctx, src, name, file)
	}
	if err == nil {
		_, err = backup.Verify(ctx, file, m, backup.VerifyOptions{Host: verifyHost(a.id.PrivateIP), TempDir: a.cfg.Backup.Dir, Logger: a.log})
	}
	v := &report.Verification{Name: name, At: a.now().UTC(), By: a.id.Name, OK: err == nil}
	if err != nil {
		v.Error = err.Error()
		a.log.Error("snapshot verification failed", "name", name, "err", err)
		a.rec.AddDecision(report.ActionSnapshotVerifyFailed, err.Error())
	} else {
		a.log.Info("snapshot verified", "name", name, "revision", m.Revision)
	}
	if err := schedule.Update(ctx, a.client, func(r *report.Backup) { r.Verification = v }); err != nil {
		a.log.Warn("record snapshot verification", "err", err)
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

func (a *Agent) setBackupLocalErr(err error) {
	a.backups.mu.Lock()
	defer a.backups.mu.Unlock()
	a.backups.localErr = ""
	if err != nil {
		a.backups.localErr = err.Error()
	}
}

// publishBackup puts the shared record into this node's report.
func (a *Agent) publishBackup(rec report.Backup, readErr error) {
	a.backups.mu.Lock()
	local := a.backups.localErr
	a.backups.mu.Unlock()
	if readErr != nil {
		local = readErr.Error()
	}
	rec.Interval = a.cfg.Backup.Interval.D()
	rec.LocalError = local
	a.rec.Update(func(r *report.NodeReport) { r.Backup = &rec })
}
