package membership

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestLeaveRefusesAnotherCluster: the node's data belongs to cluster A,
// but the cluster that answers at its recorded endpoints is B (a recovered
// cluster, or another cluster at an address reused since). Whether or not
// an earlier leave was interrupted (marker "leaving"), leave must not take
// "my member is not in the cluster" from B as a reason to wipe A's data: it
// refuses, naming both cluster IDs, and keeps the data and the marker as
// they were.
func TestLeaveRefusesAnotherCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two etcd clusters")
	}
	blk := testnet.Take(t)
	b := statustest.Start(t, blk.IP(21))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := cluster.Dial(b.CertDir, b.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idB := list.Header.GetClusterId()

	for i, tc := range []struct {
		name   string
		marker bool
	}{{"interrupted leave", true}, {"first leave", false}} {
		t.Run(tc.name, func(t *testing.T) {
			a := statustest.Start(t, blk.IP(11+i))
			a.Stop(0) // this node's member, down: its data stays
			idA, err := datadir.ReadIdentity(a.Members[0].DataDir)
			if err != nil {
				t.Fatal(err)
			}
			n := newFakeNode(t, b.CertDir, blk.IP(31), 3)
			n.cfg.Node.DataDir = a.Members[0].DataDir
			dataDir := n.cfg.Node.DataDir
			if err := sidefile.WriteEndpoints(dataDir, b.Endpoints()); err != nil {
				t.Fatal(err)
			}
			_ = sidefile.RemoveLeaveMarker(dataDir)
			if tc.marker {
				if err := sidefile.WriteLeaveMarker(dataDir, sidefile.LeaveMarker{State: sidefile.Leaving, Member: n.id.Name,
					MemberID: fmt.Sprintf("%x", idA.MemberID), At: time.Now().UTC()}); err != nil {
					t.Fatal(err)
				}
			}
			err = NewJob(n, Options{}).Leave(ctx, nil, nil)
			t.Logf("leave: %v", err)
			for _, want := range []string{fmt.Sprintf("%x", idA.ClusterID), fmt.Sprintf("%x", idB)} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Leave = %v, want a refusal naming cluster %s", err, want)
				}
			}
			if ok, err := datadir.HasMember(dataDir); !ok || err != nil {
				t.Fatalf("the data of cluster %x is gone after leave against cluster %x (%v)", idA.ClusterID, idB, err)
			}
			m, ok := sidefile.ReadLeaveMarker(dataDir)
			if ok != tc.marker || (ok && m.State != sidefile.Leaving) {
				t.Errorf("leave marker %+v (present %v), want it as it was (present %v)", m, ok, tc.marker)
			}
		})
	}
}
