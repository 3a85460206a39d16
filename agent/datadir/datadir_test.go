package datadir

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// TestReadIdentity starts a real etcd member, stops it, and reads its member
// and cluster ID back from the WAL.
func TestReadIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if ok, err := HasMember(dir); ok || err != nil {
		t.Fatalf("HasMember(missing) = %v, %v", ok, err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "m1"
	cfg.LogLevel = "error"
	cu, pu := freeURL(t), freeURL(t)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = "m1=" + pu.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	wantMember, wantCluster := uint64(e.Server.MemberID()), uint64(e.Server.Cluster().ID())
	e.Close()

	if ok, err := HasMember(dir); !ok || err != nil {
		t.Fatalf("HasMember = %v, %v", ok, err)
	}
	id, err := ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id.MemberID != wantMember || id.ClusterID != wantCluster {
		t.Fatalf("identity = %x/%x, want %x/%x", id.MemberID, id.ClusterID, wantMember, wantCluster)
	}

	moved, err := MoveAside(dir, "test", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(moved, ".removed-20261201T100000Z") {
		t.Fatalf("moved to %s", moved)
	}
	if ok, _ := HasMember(dir); ok {
		t.Fatal("data dir still holds a member after MoveAside")
	}
	if got, err := ReadIdentity(moved); err != nil || got.MemberID != wantMember {
		t.Fatalf("moved copy: %x, %v", got.MemberID, err)
	}
	if _, err := os.Stat(filepath.Join(moved, "MOVED-ASIDE.txt")); err != nil {
		t.Fatal(err)
	}
}

func freeURL(t *testing.T) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, _ := url.Parse(fmt.Sprintf("http://%s", l.Addr()))
	return *u
}
