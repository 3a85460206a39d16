package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
)

// testHost is this package's loopback address for throw-away members.
const testHost = "127.0.8.10"

// startMember runs a one-member TLS cluster on ip with n keys written, and
// returns a client to it.
func startMember(t *testing.T, ip string, n int) (*statustest.Cluster, *clientv3.Client) {
	t.Helper()
	c := statustest.Start(t, ip)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		if _, err := cli.Put(ctx, fmt.Sprintf("/k/%04d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	// History: the snapshot must carry old revisions and deletions too.
	if _, err := cli.Delete(ctx, "/k/0000"); err != nil {
		t.Fatal(err)
	}
	return c, cli
}

// take saves a snapshot and stores it in st, as the agent does.
func take(t *testing.T, cli *clientv3.Client, st store.Store) backup.Meta {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file, m, err := backup.Save(ctx, backup.SaveOptions{Client: cli, Dir: t.TempDir(), Cluster: "test_cl", TakenBy: "etcd-test", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(file)
	if err := st.PutFile(ctx, m.Name+backup.SnapshotSuffix, file); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, m.Name+backup.MetaSuffix, m.Marshal()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSaveFetchVerifyRestore: a snapshot of a real member, kept in a local
// store, fetched as "latest", verified in a throw-away member (revision, key
// count, HashKV), and restored for recovery: a member started on it serves
// every key, at a revision above the snapshot's, with the old ones compacted.
func TestSaveFetchVerifyRestore(t *testing.T) {
	_, cli := startMember(t, "127.0.8.11", 200)
	st := store.Local{Dir: t.TempDir()}
	m := take(t, cli, st)
	if m.Revision < 201 || m.KeyCount != 199 || m.ClusterID == "" || len(m.Members) != 1 || m.EtcdVersion == "" || m.HashKV == 0 {
		t.Fatalf("metadata incomplete: %+v", m)
	}
	n, err := backup.ParseName(m.Name)
	if err != nil || n.Revision != m.Revision || n.Cluster != "test_cl" || fmt.Sprintf("%016x", n.ClusterID) != m.ClusterID {
		t.Fatalf("name %q parses to %+v, %v", m.Name, n, err)
	}

	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "fetched.db")
	got, err := backup.Fetch(ctx, backup.Sources{Stores: []store.Store{st}}, backup.Latest, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != m.Name || got.SHA256 != m.SHA256 {
		t.Fatalf("fetched %+v, want %+v", got, m)
	}
	v, err := backup.Verify(ctx, dst, got, backup.VerifyOptions{Host: testHost, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if v.Revision != m.Revision || v.KeyCount != m.KeyCount || !v.HashCompared || v.HashKV != m.HashKV {
		t.Fatalf("verified %+v against %+v", v, m)
	}
	t.Logf("verified %s in %s", m.Name, v.Took)

	// Restore for recovery and run a member on it.
	dataDir := filepath.Join(t.TempDir(), "restored")
	peer := "https://" + testHost + ":23901"
	if err := backup.Restore(ctx, dst, backup.RestoreOptions{DataDir: dataDir, Name: "etcd-r", PeerURL: peer, ClusterToken: "recovered-1"}); err != nil {
		t.Fatal(err)
	}
	rev, compact := restoredRevision(t, dataDir, "etcd-r", peer)
	if rev <= m.Revision+backup.DefaultRevisionBump-1 || compact < m.Revision {
		t.Fatalf("restored member at revision %d compacted %d; snapshot revision %d: want a bump of %d, old revisions compacted", rev, compact, m.Revision, backup.DefaultRevisionBump)
	}
	// A second restore into the same (now non-empty) dir is refused.
	if err := backup.Restore(ctx, dst, backup.RestoreOptions{DataDir: dataDir, Name: "etcd-r", PeerURL: peer, ClusterToken: "x"}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore over data: %v", err)
	}
}
