package fault_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/internal/testcluster"
)

// wrongSideFreeze is how long node 3 is frozen while the old cluster
// serves: well beyond the agent's 5 s "unhealthy, check the membership"
// and well within the grace.
const wrongSideFreeze = 15 * time.Second

// TestWrongSideRecoveryKeepsServingCluster: nodes 2 and 3 freeze (a
// partition, as node 1 sees it) and `recover --from-member --lost` (naming both) runs on node 1:
// the registry now records a new cluster that replaced the old one. Nodes 2
// and 3 thaw: they are a quorum of the old cluster and acknowledge a
// writer's puts. Node 3 is frozen again for 15 s, so node 2 has no quorum
// for 15 s (less than deadMemberGrace); then node 2's agent is killed and
// started again. Neither may move its data aside: the old cluster still
// serves, and its writes would be stranded. The writer proof holds on the
// old cluster.
func TestWrongSideRecoveryKeepsServingCluster(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.useV3Discovery(3)
	n := c.form(3)
	cli := c.client(2, 3) // the old cluster's side: node 1 becomes the new cluster
	before := c.waitMembers(cli, time.Minute, 1, 2, 3)
	oldID := clusterID(t, cli)
	w := lintest.Start(t, cli, 2)
	waitAcked(t, w, 20)

	n[2].freeze()
	n[3].freeze()
	// The operator declares nodes 2 and 3 lost (their agents are frozen
	// and cannot say how far their WALs reach): the wrong call this
	// scenario is about.
	runRecover(t, c, n[1], "--from-member", "--lost", c.name(2)+","+c.name(3))
	n[2].thaw()
	n[3].thaw()
	waitAcked(t, w, w.Acked()+20) // the old cluster serves again
	t.Logf("old cluster %x serves on nodes 2 and 3 beside the recovered one on node 1", oldID)

	n[3].freeze()
	time.Sleep(wrongSideFreeze)
	n[3].thaw()
	waitAcked(t, w, w.Acked()+20)
	// As long again after the thaw: a check that started during the
	// freeze has had time to act.
	time.Sleep(wrongSideFreeze)
	waitAcked(t, w, w.Acked()+20)

	// Node 2's agent is killed (its embedded etcd with it) and started
	// again: node 3 runs, and the two make a quorum of the old cluster, so
	// node 2 restarts in place instead of waiting to move its data aside.
	n[2].kill()
	n[2].start()
	n[2].waitReady(joinTimeout)
	waitAcked(t, w, w.Acked()+20)
	if r := n[2].report(); !slices.ContainsFunc(r.Decisions, func(d report.Decision) bool { return d.Action == report.ActionRestart }) {
		t.Errorf("node 2 did not restart in place: %s", testcluster.Decisions(r))
	}

	for _, i := range []int{2, 3} {
		if aside, _ := filepath.Glob(n[i].dataDir + ".removed-*"); len(aside) != 0 {
			t.Errorf("node %d moved its data of the serving cluster aside: %q\n%s", i, aside, testcluster.Decisions(n[i].report()))
		}
		for _, d := range n[i].report().Decisions {
			if d.Action == report.ActionMoveAside {
				t.Errorf("node %d decided to move its data aside: %q", i, d.Reason)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The writer proof on the old cluster. Its member list still holds
	// node 1's old member (node 1 now serves the new cluster), so the
	// members are checked by ID here, not as "exactly nodes 2 and 3".
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := testcluster.Members(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2, 3} {
		if m, ok := ms[c.name(i)]; !ok || m.ID != before[c.name(i)].ID || m.Learner {
			t.Errorf("old cluster's member %s = %+v (listed %v), want voter %x as before", c.name(i), m, ok, before[c.name(i)].ID)
		}
	}
	w.Verify(t, cli)
	lintest.HashKVEqual(t, cli, c.endpoints(2, 3))
	if id := clusterID(t, cli); id != oldID {
		t.Errorf("nodes 2 and 3 answer as cluster %x, want the old cluster %x", id, oldID)
	}
}
