package datadir

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// TestReadTail reads a real member's WAL tail while etcd runs on it (no
// lock taken) and after it stopped: both end at the last index etcd
// committed, in the member's own cluster.
func TestReadTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := ReadTail(dir); err == nil {
		t.Fatal("ReadTail of an empty dir: no error")
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
	stopped := false
	defer func() {
		if !stopped {
			e.Close()
		}
	}()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	cli := v3client.New(e.Server)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 50 {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	want := Tail{MemberID: uint64(e.Server.MemberID()), ClusterID: uint64(e.Server.Cluster().ID()),
		LastIndex: e.Server.CommittedIndex(), LastTerm: e.Server.Term()}

	running, err := ReadTail(dir)
	if err != nil {
		t.Fatalf("while etcd runs: %v", err)
	}
	if running.MemberID != want.MemberID || running.ClusterID != want.ClusterID ||
		running.LastIndex != want.LastIndex || running.LastTerm != want.LastTerm {
		t.Fatalf("while etcd runs: tail %+v, want %+v", running, want)
	}
	e.Close()
	stopped = true
	after, err := ReadTail(dir)
	if err != nil {
		t.Fatalf("after the stop: %v", err)
	}
	if after.LastIndex != want.LastIndex || after.Commit != want.LastIndex {
		t.Fatalf("after the stop: tail %+v, want last index and commit %d", after, want.LastIndex)
	}
}

// TestTailNewerThan: raft's order, the last term first.
func TestTailNewerThan(t *testing.T) {
	for _, c := range []struct {
		a, b Tail
		want bool
	}{
		{Tail{LastTerm: 3, LastIndex: 10}, Tail{LastTerm: 3, LastIndex: 9}, true},
		{Tail{LastTerm: 3, LastIndex: 10}, Tail{LastTerm: 3, LastIndex: 10}, false},
		{Tail{LastTerm: 4, LastIndex: 8}, Tail{LastTerm: 3, LastIndex: 10}, true},
		{Tail{LastTerm: 3, LastIndex: 12}, Tail{LastTerm: 4, LastIndex: 10}, false},
	} {
		if got := c.a.NewerThan(c.b); got != c.want {
			t.Errorf("%+v newer than %+v = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
