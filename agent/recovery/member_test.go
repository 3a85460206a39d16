package recovery

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// testIP is this package's loopback address.
const testIP = "127.0.9.70"

// TestSnapshotFromMemberKeepsEntriesPastCommit: a follower appends entries
// before it learns they are committed; its WAL then holds an entry past its
// commit index — possibly a write the lost leader acknowledged. The snapshot
// of the member must hold it (etcd's --force-new-cluster alone drops it),
// and the member's own data dir must be left as it was.
func TestSnapshotFromMemberKeepsEntriesPastCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts embedded etcd three times")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	e := startMember(t, memberConfig(t, dataDir))
	cli := v3client.New(e.Server)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("key-%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	cli.Close()
	e.Close()
	appendPastCommit(t, dataDir, "past-commit", "kept")
	before := treeHash(t, dataDir)

	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	ms, err := SnapshotFromMember(ctx, dataDir, work, memberConfig(t, dataDir), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if ms.LastIndex != ms.WALCommit+1 {
		t.Fatalf("WAL commit %d, last index %d: want one entry past the commit index", ms.WALCommit, ms.LastIndex)
	}
	if after := treeHash(t, dataDir); after != before {
		t.Error("SnapshotFromMember changed the member's data dir")
	}

	restored := filepath.Join(dir, "restored")
	rcfg := memberConfig(t, restored)
	if err := backup.Restore(ctx, ms.Path, backup.RestoreOptions{DataDir: restored, Name: rcfg.Name,
		PeerURL: rcfg.AdvertisePeerUrls[0].String(), ClusterToken: "recovered"}); err != nil {
		t.Fatal(err)
	}
	rcfg.InitialCluster = ""
	e2 := startMember(t, rcfg)
	defer e2.Close()
	cli2 := v3client.New(e2.Server)
	defer cli2.Close()
	resp, err := cli2.Get(ctx, "past-commit")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("get past-commit after the recovery = %v, %v: the entry past the commit index was lost", resp, err)
	}
	all, err := cli2.Get(ctx, "key-", clientv3.WithPrefix())
	if err != nil || len(all.Kvs) != 20 {
		t.Fatalf("keys after the recovery: %d, %v; want 20", len(all.Kvs), err)
	}
	if resp.Header.GetRevision() < backup.DefaultRevisionBump {
		t.Errorf("revision %d: not bumped", resp.Header.GetRevision())
	}
	t.Logf("snapshot at revision %d (WAL commit %d, last index %d); restored revision %d", ms.Revision, ms.WALCommit, ms.LastIndex, resp.Header.GetRevision())
}

func memberConfig(t *testing.T, dataDir string) *embed.Config {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "m1"
	cfg.Dir = dataDir
	peer := url.URL{Scheme: "http", Host: net.JoinHostPort(testIP, fmt.Sprint(testnet.FreePort(t, testIP)))}
	client := url.URL{Scheme: "http", Host: net.JoinHostPort(testIP, fmt.Sprint(testnet.FreePort(t, testIP)))}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = "m1=" + peer.String()
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	return cfg
}

func startMember(t *testing.T, cfg *embed.Config) *embed.Etcd {
	t.Helper()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		e.Close()
		t.Fatal("member not ready after a minute")
	}
	return e
}

// appendPastCommit appends a put entry to the member's WAL without raising
// the commit index, as a follower holds an entry it has not learned is
// committed.
func appendPastCommit(t *testing.T, dataDir, key, value string) {
	t.Helper()
	lg := zap.NewNop()
	walDir := filepath.Join(dataDir, "member", "wal")
	snaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("WAL snapshots: %v, %v", snaps, err)
	}
	w, err := wal.Open(lg, walDir, snaps[len(snaps)-1])
	if err != nil {
		t.Fatal(err)
	}
	_, st, ents, err := w.ReadAll()
	if err != nil || len(ents) == 0 {
		t.Fatalf("read WAL: %d entries, %v", len(ents), err)
	}
	last := ents[len(ents)-1]
	if st.GetCommit() != last.GetIndex() {
		t.Fatalf("WAL commit %d, last entry %d: want a fully committed WAL to start from", st.GetCommit(), last.GetIndex())
	}
	data, err := proto.Marshal(&etcdserverpb.InternalRaftRequest{
		Header: &etcdserverpb.RequestHeader{ID: 0x5eed},
		Put:    &etcdserverpb.PutRequest{Key: []byte(key), Value: []byte(value)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ent := &raftpb.Entry{Term: new(last.GetTerm()), Index: new(last.GetIndex() + 1), Type: raftpb.EntryNormal.Enum(), Data: data}
	if err := w.Save(st, []*raftpb.Entry{ent}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// treeHash hashes every file's path and content under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
