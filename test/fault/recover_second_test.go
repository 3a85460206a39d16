package fault_test

import (
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestSecondRecoveryRefusedStatic: with static discovery no registry
// records a recovery, so the members' agents must keep a second one from
// splitting the old members between two recovered clusters. Nodes 3 and 2
// go down; node 1 recovers (new cluster N); node 2 comes back, moves its old
// data aside and joins N. Node 1 freezes, so N has no quorum, and node 3 —
// its agent down, its data of the old cluster — runs `recover
// --from-member --lost <node 1>`: node 2's agent answers with data of
// cluster N, so the recovery is refused naming node 2. Node 1 thaws, node 3
// starts, moves its data aside and joins N: one cluster, the writer proof.
func TestSecondRecoveryRefusedStatic(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.useStaticDiscovery(3)
	n := c.form(3)
	cli := c.client(1, 2, 3)
	c.waitMembers(cli, time.Minute, 1, 2, 3)
	oldID := clusterID(t, cli)
	w := lintest.Start(t, cli, 2)
	waitAcked(t, w, 20)
	n[3].kill()
	waitAcked(t, w, w.Acked()+20)
	n[2].kill()

	runRecover(t, c, n[1], "--from-member", "--lost", c.name(2)+","+c.name(3))
	cli.SetEndpoints(c.endpoints(1)...)
	waitAcked(t, w, w.Acked()+10)
	n[2].start()
	n[2].waitReady(joinTimeout)
	cli.SetEndpoints(c.endpoints(1, 2)...)
	newID := clusterID(t, cli)
	if newID == oldID {
		t.Fatalf("node 2 answers as the old cluster %x after the recovery", oldID)
	}
	t.Logf("node 2 moved into the recovered cluster %x", newID)

	// N = {1, 2} without node 1: no quorum anywhere, and node 1's agent
	// cannot answer. The operator declares node 1 lost.
	n[1].freeze()
	second := c.spawn("recover-second", c.env, nil, "recover", "--config", n[3].configPath, "--from-member", "--lost", c.name(1), "--timeout", "30s")
	code, err := second.wait(recoverTimeout)
	out := second.tail(40)
	n[1].thaw()
	if err != nil || code != exitRefused || !strings.Contains(out, c.name(2)+" (cluster ") ||
		!strings.Contains(out, "now hold data of another cluster: the lost cluster") {
		t.Fatalf("second recover --from-member on node 3: exit %d, %v; want exit 3 and a refusal naming node 2 (%s), which holds data of cluster %x:\n%s", code, err, c.name(2), newID, out)
	}
	t.Logf("second recovery refused:\n%s", out)

	n[3].start()
	n[3].waitReady(joinTimeout)
	cli.SetEndpoints(c.endpoints(1, 2, 3)...)
	c.proof(w, cli, 1, 2, 3)
	if id := clusterID(t, cli); id != newID {
		t.Errorf("the nodes answer as cluster %x, want the one recovered cluster %x", id, newID)
	}
}
