package fault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestStaticFormationRandomOrder: three founders with cluster.discovery.static
// and no data. Founder 1 starts; for 25 s the founders are started, killed
// (SIGKILL, down up to 12 s) and frozen (SIGSTOP for 1-4 s: a short cut of
// their peer network, the process answers nothing) in a seeded random order
// (ETCD_AGENT_TEST_SEED replays it); then every one runs. Exactly one
// cluster must form: one cluster ID on all three, all voters, and a writer
// running from the first start ends with the usual proof.
func TestStaticFormationRandomOrder(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useStaticDiscovery(3)
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

	n := make([]*node, 4)
	for i := 1; i <= 3; i++ {
		n[i] = c.node(i)
	}
	cli := c.client(1, 2, 3)
	w := lintest.Start(t, cli, 1)

	var mu sync.Mutex // guards up and frozen; held while signalling a node
	up := map[int]bool{}
	frozen := map[int]bool{}
	var events []string
	begin := time.Now()
	event := func(format string, args ...any) {
		events = append(events, fmt.Sprintf("%5.1fs ", time.Since(begin).Seconds())+fmt.Sprintf(format, args...))
	}
	start := func(i int) {
		mu.Lock()
		defer mu.Unlock()
		if !up[i] {
			n[i].start()
			up[i] = true
			event("start %d", i)
		}
	}
	start(1)
	end := time.Now().Add(25 * time.Second)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond)
		i := 1 + rng.IntN(3)
		mu.Lock()
		isUp, isFrozen := up[i], frozen[i]
		mu.Unlock()
		switch {
		case !isUp:
			start(i)
		case isFrozen:
		case rng.IntN(2) == 0:
			mu.Lock()
			n[i].kill()
			up[i] = false
			event("kill %d", i)
			mu.Unlock()
			back := time.Duration(rng.IntN(12000)) * time.Millisecond
			time.AfterFunc(back, func() {
				if time.Now().Before(end) {
					start(i)
				}
			})
		default:
			mu.Lock()
			n[i].freeze()
			frozen[i] = true
			event("freeze %d", i)
			mu.Unlock()
			cut := time.Duration(1000+rng.IntN(3000)) * time.Millisecond
			time.AfterFunc(cut, func() {
				mu.Lock()
				defer mu.Unlock()
				if frozen[i] {
					n[i].thaw()
					frozen[i] = false
					event("thaw %d", i)
				}
			})
		}
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	for i := 1; i <= 3; i++ {
		if frozen[i] {
			n[i].thaw()
			frozen[i] = false
			event("thaw %d", i)
		}
	}
	mu.Unlock()
	for i := 1; i <= 3; i++ {
		start(i)
	}
	mu.Lock()
	t.Logf("events:\n%s", strings.Join(events, "\n"))
	mu.Unlock()
	for i := 1; i <= 3; i++ {
		n[i].waitReady(joinTimeout)
	}

	// One cluster: every member reports the same cluster ID.
	ids := map[uint64][]int{}
	for i := 1; i <= 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, c.clientURL(i))
		cancel()
		if err != nil {
			t.Fatalf("status of node %d: %v\n%s", i, err, c.describe(1, 2, 3))
		}
		ids[st.Header.ClusterId] = append(ids[st.Header.ClusterId], i)
	}
	if len(ids) != 1 {
		t.Fatalf("%d clusters formed: %v\n%s", len(ids), ids, c.describe(1, 2, 3))
	}
	for id := range ids {
		t.Logf("one cluster %x on nodes 1, 2, 3", id)
	}
	// No data was lost: every founder bootstraps (or restarts in place
	// after it did). A founder that joins decided otherwise than the
	// others, which a slightly different order turns into a wait forever.
	for i := 1; i <= 3; i++ {
		r, _ := n[i].current()
		for _, d := range r.Decisions {
			t.Logf("node %d decided %s: %s", i, d.Action, d.Reason)
			if d.Action == report.ActionFence || d.Action == report.ActionJoin {
				t.Errorf("node %d decided %s while its founders formed the cluster: %s", i, d.Action, d.Reason)
			}
		}
	}
	// The writer could not write before the cluster formed, maybe only a
	// moment ago: let it write before the proof.
	for deadline := time.Now().Add(30 * time.Second); w.Acked() < 50 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	c.proof(w, cli, 1, 2, 3)
}
