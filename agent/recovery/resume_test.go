package recovery

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// writeMember writes a member's WAL (all datadir reads for its identity) in
// dataDir.
func writeMember(t *testing.T, dataDir string, memberID, clusterID uint64) {
	t.Helper()
	md, _ := proto.Marshal(&etcdserverpb.Metadata{NodeID: new(memberID), ClusterID: new(clusterID)})
	w, err := wal.Create(zap.NewNop(), filepath.Join(dataDir, "member", "wal"), md)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}

// TestRebuildFinishesTheMoveAfterTheRecord: an agent killed after the new
// member's data was built and its cluster recorded (request and registry),
// before the old data was moved aside, finishes the move when it picks the
// request up again. Seen in CI (TestRecoverAgentKilledMidway): the
// restarted agent refused its own recovery ("this node's data belongs to
// cluster …, which recovery 1 by <this node> … replaced"), and the node
// waited for good.
func TestRebuildFinishesTheMoveAfterTheRecord(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	writeMember(t, dataDir, 0x1234, 0xaaaa)
	writeMember(t, filepath.Join(WorkDir(dataDir), "new"), 0x5678, 0xbbbb)

	cfg := &config.Config{}
	cfg.Node.DataDir = dataDir
	n := &fakeNode{cfg: cfg, id: identity.Identity{Name: "etcd-127-0-9-97", PrivateIP: netip.MustParseAddr("127.0.9.97")},
		disc: &discovery.Static{Token: "t"}, rec: report.NewRecorder(report.NodeReport{}, nil)}
	req := Request{From: FromMember, Token: "t-new", ClusterID: "bbbb", Replaced: []string{"aaaa"}}
	r := &recovering{version: -1}
	var steps []string
	if err := NewJob(n).rebuild(context.Background(), &req, r, func(s string) { steps = append(steps, s) }); err != nil {
		t.Fatalf("rebuild: %v (steps %q)", err, steps)
	}
	id, err := memberIdentity(dataDir)
	if err != nil || id.ClusterID != 0xbbbb || id.MemberID != 0x5678 {
		t.Errorf("data dir holds %+v, %v: want the new member 5678 of cluster bbbb", id, err)
	}
	aside, _ := filepath.Glob(dataDir + ".removed-*")
	if len(aside) != 1 {
		t.Fatalf("old data moved aside %d times (%q), want once", len(aside), aside)
	}
	if old, err := memberIdentity(aside[0]); err != nil || old.ClusterID != 0xaaaa {
		t.Errorf("moved aside: %+v, %v: want the old member of cluster aaaa", old, err)
	}
	if _, err := os.Stat(WorkDir(dataDir)); !os.IsNotExist(err) {
		t.Errorf("work dir still there: %v", err)
	}
	if !r.moved || r.rec.ClusterID != "bbbb" {
		t.Errorf("recovering = moved %v, cluster %q: want the resumed recovery of bbbb", r.moved, r.rec.ClusterID)
	}
	t.Logf("steps: %q", steps)
}
