package agent_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/s3test"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestRetentionKeepsNewestVerified: retention never deletes the newest
// verified snapshot, whatever failed since. One node, a snapshot and a
// verification every 3 s, retention that keeps only the newest otherwise;
// once a snapshot is verified, the S3 gateway (a real versitygw) stops: the
// snapshots go on in the local dir, their verification fails, and the
// verified one stays in the local dir through the rounds that prune it.
// When S3 is back it is deleted there only after a newer one is verified.
// A writer runs throughout (every acknowledged write read back, history
// linearizable, HashKV).
func TestRetentionKeepsNewestVerified(t *testing.T) {
	h := newHarness(t)
	srv := s3test.Start(t, h.ip(9))
	srv.Env(t)
	srv.Bucket(t, "etcd-backups")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token := h.startDiscovery(ctx, 1)
	cfg := snapshotConfig(h, 1, 1, h.v3Discovery(token), srv)
	cfg.Backup.Retention = config.Retention{Hourly: -1, Daily: -1, Weekly: -1}
	n := h.start(ctx, 1, cfg)
	n.waitReady(t, readyTimeout)
	ep := n.agent.Report().ClientURL
	cli := h.client(ep, n.certDir())
	defer cli.Close()
	w := startWriter(t, cli, 2)
	local := store.Local{Dir: cfg.Backup.Dir}
	s3 := s3Store(t, srv, "prod/test/")
	backups := func() report.Backup {
		if b := n.agent.Report().Backup; b != nil {
			return *b
		}
		return report.Backup{}
	}

	var verified *report.Verification
	waitForBackup(t, 60*time.Second, "a verified snapshot", func() bool {
		verified = backups().Verification
		return verified != nil && verified.OK
	})
	t.Logf("verified %s; S3 stops answering", verified.Name)
	srv.Stop()

	// A failed verification, then two snapshots taken (and pruned)
	// after it.
	var failed *report.Verification
	waitForBackup(t, 60*time.Second, "a failed verification with S3 down", func() bool {
		failed = backups().Verification
		return failed != nil && !failed.OK && failed.At.After(verified.At)
	})
	t.Logf("verification failed: %s", failed.Error)
	// (Retention keeps only the newest besides the protected one: each is
	// seen until the next round deletes it.)
	seen := map[string]bool{}
	waitForBackup(t, 60*time.Second, "two snapshots taken (and pruned) after the failed verification", func() bool {
		names, _ := backup.List(ctx, local)
		for _, name := range names {
			if nm, err := backup.ParseName(name); err == nil && nm.Time.After(failed.At) {
				seen[name] = true
			}
		}
		return len(seen) >= 2
	})
	names, err := backup.List(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, verified.Name) {
		t.Fatalf("the newest verified snapshot %s was deleted by retention after one failed verification; left in %s: %v", verified.Name, local.Dir, names)
	}

	// S3 back: the verified one stays there until a newer one is verified.
	srv.Restart(t)
	var next *report.Verification
	waitForBackup(t, 60*time.Second, "a newer snapshot verified once S3 is back", func() bool {
		next = backups().Verification
		return next != nil && next.OK && next.Name != verified.Name
	})
	// In the log: no store deleted it before a verification succeeded
	// again after the failed one.
	lines := strings.Split(nodeLog(t, n), "\n")
	failedAt, verifiedAt, deletedAt := -1, -1, -1
	for i, line := range lines {
		switch {
		case failedAt < 0 && strings.Contains(line, "snapshot verification failed"):
			failedAt = i
		case failedAt >= 0 && verifiedAt < 0 && strings.Contains(line, "snapshot verified"):
			verifiedAt = i
		}
		if deletedAt < 0 && strings.Contains(line, "snapshots deleted by retention") && strings.Contains(line, verified.Name) {
			deletedAt = i
		}
	}
	if deletedAt >= 0 && (verifiedAt < 0 || deletedAt < verifiedAt) {
		t.Errorf("%s deleted while it was the newest verified snapshot: %s", verified.Name, lines[deletedAt])
	}
	t.Logf("verified %s once S3 was back", next.Name)
	inS3, _ := backup.List(ctx, s3)
	t.Logf("in S3: %v", inS3)

	w.verify(t, cli)
	lintest.HashKVEqual(t, cli, []string{ep})
}
