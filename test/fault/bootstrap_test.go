package fault_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestFormedClusterNeverBootstrapsAgain is the reproduction of the
// membership-safety issue with v3 discovery: a founder that lost its disk
// while the rest of the cluster is down must not bootstrap a second time
// (with the same token it would form a quorum with a stale member and lose
// acknowledged writes); it waits, and rejoins as a new member once a quorum
// answers.
func TestFormedClusterNeverBootstrapsAgain(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useV3Discovery(3)
	neverBootstrapsAgain(t, c)
}

// TestFormedClusterNeverBootstrapsAgainStatic is the same with a static
// founder list, where formation is only visible at the other founders.
func TestFormedClusterNeverBootstrapsAgainStatic(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useStaticDiscovery(3)
	neverBootstrapsAgain(t, c)
}

const keyK = "fault/K"

func neverBootstrapsAgain(t *testing.T, c *cluster) {
	n := c.form(3)
	cli := c.client(1, 2, 3)
	before := c.waitMembers(cli, time.Minute, 1, 2, 3)
	w := lintest.Start(t, cli, 2)

	n[3].kill()
	put(t, cli, keyK, "v1") // acknowledged by nodes 1 and 2; node 3 never saw it
	n[1].kill()
	n[2].kill()
	n[2].wipe()
	n[2].start()

	// Node 2 has no data, its cluster formed long ago, nobody answers:
	// it must wait, not bootstrap.
	t.Log("node 2 restarted without data while nodes 1 and 3 are down; watching it for 10s")
	watchNoBootstrap(t, n[2], 10*time.Second)
	r, _ := n[2].current()
	if !strings.Contains(strings.ToLower(r.Message), "wait") {
		t.Errorf("node 2's status message = %q (phase %s), want it waiting (like \"cluster formed, no member reachable: waiting to rejoin as a new member\")", r.Message, r.Phase)
	}
	t.Logf("node 2 after 10s: phase %s, message %q", r.Phase, r.Message)

	// Node 3 restarts in place, without K. Nodes 2 and 3 together must not
	// make a quorum that has never seen K.
	n[3].start()
	only3 := c.client(3)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v, found, err := getValue(only3, keyK, 2*time.Second)
		switch {
		case err == nil && !found:
			t.Fatalf("split brain: get %s through node 3 succeeded with no value: node 2 formed a quorum with node 3 that lost the acknowledged write\n%s\n%s",
				keyK, n[2].describe(), n[3].describe())
		case err == nil:
			t.Logf("get %s through node 3 = %q (a quorum that has K answers?)", keyK, v)
		}
		time.Sleep(time.Second)
	}
	checkNoBootstrap(t, n[2])

	// Node 1, which has K, comes back: a quorum (1 and 3) answers, node 2
	// removes its past self and joins as a new member.
	n[1].start()
	for _, i := range []int{1, 3, 2} {
		n[i].waitReady(joinTimeout)
	}
	after := c.waitMembers(cli, joinTimeout, 1, 2, 3)
	if after[c.name(2)].ID == before[c.name(2)].ID {
		t.Errorf("node 2 kept member ID %x: want a new member after losing its data", after[c.name(2)].ID)
	}
	for _, i := range []int{1, 3} {
		if after[c.name(i)].ID != before[c.name(i)].ID {
			t.Errorf("node %d's member ID changed from %x to %x: it should have restarted in place", i, before[c.name(i)].ID, after[c.name(i)].ID)
		}
	}
	checkNoBootstrap(t, n[2])
	if v, found, err := getValue(cli, keyK, 10*time.Second); err != nil || !found || v != "v1" {
		t.Fatalf("get %s = %q (found %v, err %v), want v1", keyK, v, found, err)
	}
	c.proof(w, cli, 1, 2, 3)
}

// watchNoBootstrap watches node n for d: it must not bootstrap, and
// nothing may answer on its client port as a voter.
func watchNoBootstrap(t *testing.T, n *node, d time.Duration) {
	t.Helper()
	probe := n.c.client(n.i)
	deadline := time.Now().Add(d)
	answered := false
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := probe.Status(ctx, n.c.clientURL(n.i))
		cancel()
		if err == nil && !st.IsLearner && !answered {
			answered = true
			t.Errorf("node %d's client port answers as a voter (leader %x, raft term %d, member %x) while the rest of its cluster is down: it runs etcd as a voting member", n.i, st.Leader, st.RaftTerm, st.Header.MemberId)
		}
		checkNoBootstrap(t, n)
		time.Sleep(500 * time.Millisecond)
	}
}

// checkNoBootstrap reports a bootstrap decision of n's current process
// (once).
func checkNoBootstrap(t *testing.T, n *node) {
	t.Helper()
	r, ok := n.current()
	if !ok {
		return
	}
	for _, d := range r.Decisions {
		if d.Action == report.ActionBootstrap {
			if n.bootstrapSeen {
				return
			}
			n.bootstrapSeen = true
			t.Errorf("node %d bootstrapped a new cluster again after losing its data (decision at %s: %s); phase %s, message %q",
				n.i, d.At.Format(time.RFC3339), d.Reason, r.Phase, r.Message)
			return
		}
	}
}
