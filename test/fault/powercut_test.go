package fault_test

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestPowerCutRandomOrder: every node loses power at once (SIGKILL, and the
// containers with it on Podman) and they come back in a random order with
// small random delays, twice; each restarts in place as the same member.
// ETCD_AGENT_TEST_SEED replays a run.
func TestPowerCutRandomOrder(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useV3Discovery(3)
	powerCut(t, c)
}

// TestPowerCutRandomOrderPodman is the power cut with every member in a
// container on the rootful test Podman socket.
func TestPowerCutRandomOrderPodman(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.usePodman()
	c.useV3Discovery(3)
	powerCut(t, c)
}

func powerCut(t *testing.T, c *cluster) {
	n := c.form(3)
	cli := c.client(1, 2, 3)
	before := c.waitMembers(cli, time.Minute, 1, 2, 3)
	w := lintest.Start(t, cli, 2)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ETCD_AGENT_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ETCD_AGENT_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (ETCD_AGENT_TEST_SEED=%d replays this order)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	for round := 1; round <= 2; round++ {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond) // let the writer write
		for i := 1; i <= 3; i++ {
			n[i].powerCut()
		}
		order := rng.Perm(3)
		for _, j := range order {
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			n[j+1].start()
		}
		t.Logf("round %d: restarted nodes in order %d %d %d", round, order[0]+1, order[1]+1, order[2]+1)
		for i := 1; i <= 3; i++ {
			n[i].waitReady(readyTimeout)
		}
		after := c.waitMembers(cli, time.Minute, 1, 2, 3)
		for name, m := range before {
			if after[name].ID != m.ID {
				t.Fatalf("round %d: %s has member ID %x, was %x: a power cut must restart members in place", round, name, after[name].ID, m.ID)
			}
		}
		for i := 1; i <= 3; i++ {
			r, _ := n[i].current()
			for _, d := range r.Decisions {
				if d.Action == report.ActionBootstrap || d.Action == report.ActionJoin || d.Action == report.ActionRemoveMember {
					t.Errorf("round %d: node %d decided %s after a power cut: %s", round, i, d.Action, d.Reason)
				}
			}
		}
	}
	c.proof(w, cli, 1, 2, 3)
}
