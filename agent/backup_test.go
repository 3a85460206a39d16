package agent_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/s3test"
	"github.com/etcd-agent/etcd-agent/agent/backup/schedule"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// snapshotConfig is node i's config with snapshots every few seconds into
// the S3 gateway srv (bucket "etcd-backups").
func snapshotConfig(h *harness, i, size int, disc config.Discovery, srv *s3test.Server) *config.Config {
	h.backups = true
	cfg := h.config(i, size, disc)
	cfg.Backup.Interval = config.Duration(3 * time.Second)
	cfg.Backup.VerifyInterval = config.Duration(3 * time.Second)
	if srv != nil {
		cfg.Backup.S3 = config.BackupS3{Bucket: "etcd-backups", Prefix: "prod/", Endpoint: srv.Endpoint}
	}
	if _, err := cfg.Validate(); err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

// recordHistory returns every version of the shared snapshot record, oldest
// first, from the cluster's own history (a watch from revision 1).
func recordHistory(t *testing.T, cli *clientv3.Client) []report.Backup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now, err := cli.Get(ctx, schedule.RecordKey)
	if err != nil {
		t.Fatal(err)
	}
	var out []report.Backup
	if len(now.Kvs) == 0 {
		return nil
	}
	last := now.Kvs[0].ModRevision
	for resp := range cli.Watch(ctx, schedule.RecordKey, clientv3.WithRev(1)) {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			var rec report.Backup
			if err := json.Unmarshal(ev.Kv.Value, &rec); err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
			if ev.Kv.ModRevision >= last {
				return out
			}
		}
	}
	t.Fatal("watch of the snapshot record ended early")
	return nil
}

// scheduledSnapshots lists the distinct scheduled snapshots in the record's
// history with the slot each was taken for, and who took each.
func scheduledSnapshots(hist []report.Backup) (names []string, slots []int64, takers map[string]string) {
	takers = map[string]string{}
	for _, r := range hist {
		if l := r.Last; l != nil && l.Reason == "scheduled" && !slices.Contains(names, l.Name) {
			names = append(names, l.Name)
			slots = append(slots, r.Slot)
			takers[l.Name] = l.TakenBy
		}
	}
	return names, slots, takers
}

// TestScheduledSnapshots: three agents share one snapshot per interval (the
// record's history shows every slot handled once, by one agent), upload to a
// real S3 gateway, verify the newest; the agent that took the latest one is
// killed and the others keep taking them; a replacement node joins, and a
// snapshot is taken before each membership change it makes. A writer runs
// throughout: every acknowledged write is read back, the history is
// linearizable, HashKV is equal on the members.
func TestScheduledSnapshots(t *testing.T) {
	h := newHarness(t)
	srv := s3test.Start(t, h.ip(9))
	srv.Env(t)
	srv.Bucket(t, "etcd-backups")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token := h.startDiscovery(ctx, 3)
	nodes := map[int]*node{}
	for i := 1; i <= 3; i++ {
		nodes[i] = h.start(ctx, i, snapshotConfig(h, i, 3, h.v3Discovery(token), srv))
	}
	var endpoints []string
	for i := 1; i <= 3; i++ {
		nodes[i].waitReady(t, readyTimeout)
		endpoints = append(endpoints, nodes[i].agent.Report().ClientURL)
	}
	cli := h.client(strings.Join(endpoints, ","), nodes[1].certDir())
	defer cli.Close()
	w := startWriter(t, cli, 3)

	// Three scheduled snapshots and a verification.
	waitForBackup(t, 90*time.Second, "3 scheduled snapshots and a verified one", func() bool {
		names, _, _ := scheduledSnapshots(recordHistory(t, cli))
		b := nodes[2].agent.Report().Backup
		return len(names) >= 3 && b != nil && b.Verification != nil && b.Verification.OK
	})
	names, slots, takers := scheduledSnapshots(recordHistory(t, cli))
	for i := 1; i < len(slots); i++ {
		if slots[i] <= slots[i-1] {
			t.Fatalf("slot %d handled twice or out of order: slots %v, snapshots %v", slots[i], slots, names)
		}
	}
	t.Logf("scheduled snapshots %v for slots %v, taken by %v", names, slots, takers)
	s3 := s3Store(t, srv, "prod/test/")
	inS3, err := backup.List(ctx, s3)
	if err != nil || len(inS3) == 0 {
		t.Fatalf("snapshots in S3: %v, %v", inS3, err)
	}

	// Kill the agent that took the newest snapshot: the others take the
	// next ones.
	newest := names[len(names)-1]
	victim := 0
	for i, n := range nodes {
		if n.agent.Report().Name == takers[newest] {
			victim = i
		}
	}
	if victim == 0 {
		t.Fatalf("no node named %s took %s", takers[newest], newest)
	}
	nodes[victim].stop()
	delete(nodes, victim)
	var alive []string
	for _, n := range nodes {
		alive = append(alive, n.agent.Report().ClientURL)
	}
	cli2 := h.client(strings.Join(alive, ","), nodes[lowestNode(nodes)].certDir())
	defer cli2.Close()
	waitForBackup(t, 60*time.Second, "2 scheduled snapshots after the taker died", func() bool {
		after, _, tk := scheduledSnapshots(recordHistory(t, cli2))
		n := 0
		for _, name := range after {
			if name > newest && tk[name] != takers[newest] {
				n++
			}
		}
		return n >= 2
	})

	// A replacement joins: it removes the dead member and adds itself,
	// each change after a snapshot.
	nodes[4] = h.start(ctx, 4, snapshotConfig(h, 4, 3, h.v3Discovery(token), srv))
	nodes[4].waitReady(t, 2*readyTimeout)
	var reasons []string
	for _, r := range recordHistory(t, cli2) {
		if r.Last != nil && !slices.Contains(reasons, r.Last.Reason) {
			reasons = append(reasons, r.Last.Reason)
		}
	}
	t.Logf("snapshot reasons in the record's history: %q", reasons)
	for _, want := range []string{"before removing member " + h.name(victim), "before adding learner " + h.name(4)} {
		if !slices.ContainsFunc(reasons, func(r string) bool { return strings.HasPrefix(r, want) }) {
			t.Errorf("no snapshot %q; snapshot reasons seen: %q", want, reasons)
		}
	}

	// Status on a surviving node: the newest snapshot, verified, no problem.
	n := nodes[lowestNode(nodes)]
	rep := n.agent.Report()
	v := status.Gather(ctx, status.Options{Endpoints: []string{rep.ClientURL}, TLS: nodeOperatorTLS(t, n), Report: &rep})
	if v.Node.Backup == nil || v.Node.Backup.Last == nil || v.Node.Backup.Verification == nil {
		t.Fatalf("status shows no snapshot: %+v", v.Node.Backup)
	}
	for _, p := range v.Summary.Problems {
		if strings.HasPrefix(string(p.Code), "snapshot") {
			t.Errorf("status problem: %s", p.Text)
		}
	}

	final := []string{}
	for _, n := range nodes {
		final = append(final, n.agent.Report().ClientURL)
	}
	cli3 := h.client(strings.Join(final, ","), n.certDir())
	defer cli3.Close()
	w.verify(t, cli3)
	lintest.HashKVEqual(t, cli3, final)
}

func lowestNode(m map[int]*node) int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[0]
}

func s3Store(t *testing.T, srv *s3test.Server, prefix string) store.Store {
	t.Helper()
	st, err := store.NewS3(context.Background(), store.S3Config{Bucket: "etcd-backups", Prefix: prefix, Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func nodeOperatorTLS(t *testing.T, n *node) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientTLS(n.certDir(), pki.OperatorCertFile, pki.OperatorKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// waitForBackup polls cond until it holds or the deadline passes.
func waitForBackup(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSnapshotFaults: each fault of the snapshot path on a one-node
// cluster under a writer: the agent logs it, its report and `status` name it
// with the fix, and the cluster is unaffected (every acknowledged write read
// back, history linearizable).
func TestSnapshotFaults(t *testing.T) {
	gw := testnet.Take(t) // the S3 gateway's, shared by the cases
	srv := s3test.Start(t, gw.IP(1))
	srv.Bucket(t, "etcd-backups")
	cases := []struct {
		name  string
		setup func(t *testing.T, cfg *config.Config)
		// after runs once the cluster is up (nil: nothing).
		after func(t *testing.T, cfg *config.Config)
		want  []string
	}{
		{"wrong bucket", func(t *testing.T, cfg *config.Config) {
			srv.Env(t)
			cfg.Backup.S3.Bucket = "no-such-bucket"
		}, nil, []string{`bucket "no-such-bucket" does not exist`, "fix:"}},
		{"no credentials", func(t *testing.T, cfg *config.Config) { s3test.NoAWSEnv(t) }, nil,
			[]string{"no AWS credentials", "instance profile"}},
		{"S3 unreachable", func(t *testing.T, cfg *config.Config) {
			srv.Env(t)
			cfg.Backup.S3.Endpoint = "http://" + gw.IP(2) + ":9"
		}, nil, []string{"unreachable", "backup.s3.endpoint"}},
		{"disk full", func(t *testing.T, cfg *config.Config) {
			cfg.Backup.S3 = config.BackupS3{}
			mountTinyTmpfs(t, cfg.Backup.Dir)
		}, nil, []string{"no space left on device", "free space"}},
		{"truncated snapshot", func(t *testing.T, cfg *config.Config) {
			cfg.Backup.S3 = config.BackupS3{}
		}, truncateNewest, []string{"truncated or corrupt", "failed verification"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			token := h.startDiscovery(ctx, 1)
			cfg := snapshotConfig(h, 1, 1, h.v3Discovery(token), srv)
			c.setup(t, cfg)
			n := h.start(ctx, 1, cfg)
			n.waitReady(t, readyTimeout)
			ep := n.agent.Report().ClientURL
			cli := h.client(ep, n.certDir())
			defer cli.Close()
			w := startWriter(t, cli, 2)
			if c.after != nil {
				c.after(t, cfg)
			}
			var problems []string
			waitForBackup(t, 90*time.Second, "status problem saying "+strings.Join(c.want, ", "), func() bool {
				rep := n.agent.Report()
				v := status.Gather(ctx, status.Options{Endpoints: []string{ep}, TLS: nodeOperatorTLS(t, n), Report: &rep})
				problems = problems[:0]
				for _, p := range v.Summary.Problems {
					problems = append(problems, p.Text)
				}
				all := strings.Join(problems, "\n")
				for _, want := range c.want {
					if !strings.Contains(all, want) {
						return false
					}
				}
				return true
			})
			t.Logf("status problems: %q", problems)
			log := strings.ReplaceAll(nodeLog(t, n), `\"`, `"`) // slog quotes values
			if !strings.Contains(log, c.want[0]) {
				t.Errorf("agent log does not say %q", c.want[0])
			}
			if rep := n.agent.Report(); rep.Phase != report.PhaseHealthy {
				t.Errorf("agent phase %s (%s), want healthy: a backup fault must not affect the member", rep.Phase, rep.Message)
			}
			w.verify(t, cli)
			lintest.HashKVEqual(t, cli, []string{ep})
		})
	}
}

// truncateNewest waits for a local snapshot, then puts a truncated copy of
// it beside it under a newer name and revision (as an interrupted copy would
// leave), with its metadata: the next verification takes it as the newest.
func truncateNewest(t *testing.T, cfg *config.Config) {
	t.Helper()
	local := store.Local{Dir: cfg.Backup.Dir}
	var names []string
	waitForBackup(t, 60*time.Second, "a local snapshot", func() bool {
		names, _ = backup.List(context.Background(), local)
		return len(names) > 0
	})
	orig := names[len(names)-1]
	data, err := os.ReadFile(filepath.Join(cfg.Backup.Dir, orig+backup.SnapshotSuffix))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(filepath.Join(cfg.Backup.Dir, orig+backup.MetaSuffix))
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.ParseMeta(mb, orig)
	if err != nil {
		t.Fatal(err)
	}
	// Newer by revision (what orders snapshots), as the next one would be.
	n, _ := backup.ParseName(orig)
	n.Time, n.Revision = n.Time.Add(time.Hour), n.Revision+1_000_000
	m.Name, m.Revision = n.String(), n.Revision
	if err := os.WriteFile(filepath.Join(cfg.Backup.Dir, m.Name+backup.SnapshotSuffix), data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Backup.Dir, m.Name+backup.MetaSuffix), m.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mountTinyTmpfs mounts a 64 KiB tmpfs at dir (root only), smaller than any
// snapshot, for the rest of the test.
func mountTinyTmpfs(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk full: mounting a small tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("disk full: cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
}

// nodeLog is node n's log so far (every run of node n.i).
func nodeLog(t *testing.T, n *node) string {
	t.Helper()
	return n.e.NodeLogs(n.i)
}

// TestSnapshotBeforeLeave: `leave` takes a snapshot before it removes its
// member (the one change the agents do not make by themselves), under a
// writer; the cluster keeps every acknowledged write.
func TestSnapshotBeforeLeave(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.backups = true
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	w := startWriter(t, cli, 2)
	n4 := h.start(ctx, 4, h.config(4, 5, h.v3Discovery(token)))
	n4.waitReady(t, joinTimeout)

	logger := slog.New(slog.DiscardHandler)
	leaver, err := agent.New(agent.Options{Config: n4.cfg, Identity: agent.NewIdentity(n4.cfg, logger), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer lcancel()
	if err := leaver.Leave(lctx, nil); err != nil {
		t.Fatal(err)
	}
	h.wantMembers(t, cli, 1, 2, 3)
	var reasons []string
	for _, r := range recordHistory(t, cli) {
		if r.Last != nil && !slices.Contains(reasons, r.Last.Reason) {
			reasons = append(reasons, r.Last.Reason)
		}
	}
	t.Logf("snapshot reasons in the record's history: %q", reasons)
	if !slices.Contains(reasons, "before removing member "+h.name(4)+" (leave)") || !slices.Contains(reasons, "before adding learner "+h.name(4)) {
		t.Errorf("no snapshot before the join and the leave of node 4: %q", reasons)
	}
	names, err := backup.List(ctx, store.Local{Dir: n4.cfg.Backup.Dir})
	if err != nil || len(names) < 2 {
		t.Errorf("node 4's snapshot dir holds %v (%v), want its two snapshots", names, err)
	}
	w.verify(t, cli)
	lintest.HashKVEqual(t, cli, []string{nodes[0].agent.Report().ClientURL, nodes[1].agent.Report().ClientURL, nodes[2].agent.Report().ClientURL})
}
