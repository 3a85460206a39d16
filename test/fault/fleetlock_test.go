package fault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/internal/testcluster"
)

// rebootTimeout bounds one node's turn: its pre-reboot granted, its reboot,
// its steady-state granted.
const rebootTimeout = 5 * time.Minute

// zincatiID is node i's Zincati ID.
func zincatiID(i int) string { return "zincati-node" + strconv.Itoa(i) }

// fleetLockURL is node i's agent's FleetLock base URL (its own loopback
// address, as the Butane config points Zincati at 127.0.0.1).
func (c *cluster) fleetLockURL(i int) string {
	return "http://" + net.JoinHostPort(c.ip(i), strconv.Itoa(testcluster.FleetLockPort))
}

// zincati asks node i's agent what Zincati asks (path: pre-reboot or
// steady-state) over HTTP, exactly as Zincati sends it. err is a transport
// failure (the agent is not up); otherwise the status and the refusal (or,
// for a 200, the agent's reason in Value).
func (c *cluster) zincati(ctx context.Context, i int, path string) (int, fleetlock.ErrorBody, error) {
	body, _ := json.Marshal(map[string]any{"client_params": map[string]string{"id": zincatiID(i), "group": "default"}})
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.fleetLockURL(i)+path, bytes.NewReader(body))
	if err != nil {
		return 0, fleetlock.ErrorBody{}, err
	}
	req.Header.Set(fleetlock.ProtocolHeader, "true")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fleetlock.ErrorBody{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e fleetlock.ErrorBody
	if resp.StatusCode == http.StatusOK {
		_ = json.Unmarshal(b, &e)
	} else {
		if err := json.Unmarshal(b, &e); err != nil || e.Kind == "" {
			return resp.StatusCode, e, fmt.Errorf("refusal without the FleetLock error shape (%d): %s", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e, nil
}

// untilGranted asks path until node i's agent answers 200 (bounded), and
// returns the refusals' kinds it saw on the way, in order, without repeats,
// and the grant's reason last.
func (c *cluster) untilGranted(ctx context.Context, i int, path string) ([]string, error) {
	deadline := time.Now().Add(rebootTimeout)
	var kinds []string
	for {
		code, e, err := c.zincati(ctx, i, path)
		switch {
		case err == nil && code == http.StatusOK:
			return append(kinds, e.Value), nil
		case err == nil:
			if len(kinds) == 0 || kinds[len(kinds)-1] != e.Kind {
				kinds = append(kinds, e.Kind)
			}
		case strings.Contains(err.Error(), "error shape"):
			return kinds, err
		default:
			if len(kinds) == 0 || kinds[len(kinds)-1] != "unreachable" {
				kinds = append(kinds, "unreachable")
			}
		}
		if time.Now().After(deadline) {
			return kinds, fmt.Errorf("node %d: %s not granted within %s (refusals: %v, last: %v %v)", i, path, rebootTimeout, kinds, e, err)
		}
		select {
		case <-ctx.Done():
			return kinds, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// slotWatch samples the reboot slots throughout a scenario: every sample
// must show at most max holders; it keeps the timeline of who held a slot
// when.
type slotWatch struct {
	mu       sync.Mutex
	timeline []string
	over     []string
	holders  string
	samples  int
	stop     func()
}

func watchSlots(t *testing.T, cli *clientv3.Client, max int) *slotWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &slotWatch{}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := cli.Get(gctx, keys.FleetLockPrefix, clientv3.WithPrefix())
			gcancel()
			if err == nil {
				var ids []string
				for _, kv := range resp.Kvs {
					var h fleetlock.Holder
					_ = json.Unmarshal(kv.Value, &h)
					ids = append(ids, h.ID)
				}
				slices.Sort(ids)
				now := strings.Join(ids, ",")
				w.mu.Lock()
				w.samples++
				if len(ids) > max {
					w.over = append(w.over, fmt.Sprintf("+%s: %d holders: %s", time.Since(start).Round(time.Millisecond), len(ids), now))
				}
				if now != w.holders || len(w.timeline) == 0 {
					if now == "" {
						now = "(none)"
					}
					w.timeline = append(w.timeline, fmt.Sprintf("+%6s slot held by %s", time.Since(start).Round(100*time.Millisecond), now))
					if now == "(none)" {
						now = ""
					}
					w.holders = now
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	w.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(w.stop)
	return w
}

// check stops the watch and fails the test if a sample showed too many
// holders; it logs the timeline.
func (w *slotWatch) check(t *testing.T) {
	t.Helper()
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("slot timeline (%d samples):\n%s", w.samples, strings.Join(w.timeline, "\n"))
	if len(w.over) > 0 {
		t.Errorf("more than one node held a reboot slot at once:\n%s", strings.Join(w.over, "\n"))
	}
	if w.samples == 0 {
		t.Error("the slots were never sampled")
	}
}

// leaderIs reports whether node i's member leads, as it says itself.
func (c *cluster) leaderIs(cli *clientv3.Client, i int) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, c.clientURL(i))
	if err != nil {
		return false, err
	}
	return st.Leader == st.Header.MemberId, nil
}

// TestRollingOSReboots: three nodes' Zincati ask pre-reboot at the same
// moment, by HTTP as Zincati does; each granted node is "rebooted" (its
// agent and embedded etcd killed and started again in place) and then asks
// steady-state until granted. Exactly one node holds the slot at any time
// (sampled throughout), the granted node never leads when it goes down
// (leadership moved first), all three reboot in turn, and the writer proof
// holds.
func TestRollingOSReboots(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = time.Minute // longer than a reboot: no holder is a ghost here
	c.useV3Discovery(3)
	n := c.form(3)
	cli := c.client(1, 2, 3)
	c.waitMembers(cli, time.Minute, 1, 2, 3)
	w := lintest.Start(t, cli, 2)
	slots := watchSlots(t, cli, 1)
	start := time.Now()

	type reboot struct {
		i    int
		done chan struct{}
	}
	reboots := make(chan reboot)
	var mu sync.Mutex
	var timeline []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		timeline = append(timeline, fmt.Sprintf("+%6s ", time.Since(start).Round(100*time.Millisecond))+fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 3)
	var handOvers atomic.Int32
	ask := make(chan struct{})
	for i := 1; i <= 3; i++ {
		go func() {
			<-ask // the three ask at the same moment
			kinds, err := c.untilGranted(ctx, i, fleetlock.PreRebootPath)
			if err != nil {
				errs <- err
				return
			}
			granted := kinds[len(kinds)-1]
			logf("node %d: pre-reboot granted: %s (refused before: %v)", i, granted, kinds[:len(kinds)-1])
			if strings.Contains(granted, "leadership moved") {
				handOvers.Add(1)
			}
			r := reboot{i: i, done: make(chan struct{})}
			select {
			case reboots <- r:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
			<-r.done
			kinds, err = c.untilGranted(ctx, i, fleetlock.SteadyStatePath)
			if err != nil {
				errs <- err
				return
			}
			logf("node %d: steady-state granted: %s (refused before: %v)", i, kinds[len(kinds)-1], kinds[:len(kinds)-1])
			errs <- nil
		}()
	}
	close(ask)

	// The reboots, on the test's goroutine, as they are granted.
	var order []int
	pids := map[int][2]int{}
	finished := 0
	for finished < 3 {
		select {
		case r := <-reboots:
			if leads, err := c.leaderIs(cli, r.i); err != nil || leads {
				t.Errorf("node %d was granted its reboot while its member leads (%v): leadership must move first", r.i, err)
			}
			logf("node %d: rebooting (agent and etcd killed)", r.i)
			oldPID := n[r.i].proc.cmd.Process.Pid
			n[r.i].kill()
			if _, err := n[r.i].proc.wait(time.Minute); err != nil {
				t.Fatalf("node %d did not die: %v", r.i, err)
			}
			n[r.i].start()
			pids[r.i] = [2]int{oldPID, n[r.i].proc.cmd.Process.Pid}
			logf("node %d: booted again (agent pid %d → %d)", r.i, oldPID, n[r.i].proc.cmd.Process.Pid)
			order = append(order, r.i)
			close(r.done)
		case err := <-errs:
			if err != nil {
				cancel()
				t.Fatalf("%v\n%s", err, c.describe(1, 2, 3))
			}
			finished++
		case <-time.After(3 * rebootTimeout):
			t.Fatalf("the rolling reboots did not finish:\n%s", c.describe(1, 2, 3))
		}
	}
	mu.Lock()
	t.Logf("reboot timeline:\n%s", strings.Join(timeline, "\n"))
	mu.Unlock()
	time.Sleep(300 * time.Millisecond) // one more sample of the slots: free again
	slots.check(t)
	if !slices.Equal(slices.Sorted(slices.Values(order)), []int{1, 2, 3}) {
		t.Errorf("rebooted nodes %v, want each of the three once", order)
	}
	resp, err := cli.Get(context.Background(), keys.FleetLockPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("after every steady-state: %v slots held (%v), want none", resp.Count, err)
	}
	if handOvers.Load() == 0 {
		t.Error("no grant moved leadership away: the leader's node was rebooted without a hand-over, or never")
	}
	for i := 1; i <= 3; i++ {
		n[i].waitReady(readyTimeout)
		// The slot was released by the agent that came back, once its
		// member was a healthy, caught-up voter.
		var released bool
		for _, d := range n[i].report().Decisions {
			released = released || d.Action == report.ActionRebootReleased
		}
		if r := n[i].report(); r.PID != pids[i][1] || !released {
			t.Errorf("node %d: the report of pid %d (want the restarted agent's %d) shows no release decision: %s", i, r.PID, pids[i][1], testcluster.Decisions(r))
		}
	}
	c.proof(w, cli, 1, 2, 3)
	t.Logf("three coordinated reboots under a writer in %s", time.Since(start).Round(time.Second))
}

// TestGhostHolder: the slot holder's node never comes back. Until the
// grace has passed its slot stays held (another node's pre-reboot is
// refused, and so is a release by hand without --force); then the agents
// free it by themselves, the next node is still refused while the dead
// member is a voter, a replacement takes the dead member's place, and the
// next node reboots.
func TestGhostHolder(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = 8 * time.Second
	c.useV3Discovery(3)
	n := c.form(3)
	cli := c.client(1, 2, 3)
	c.waitMembers(cli, time.Minute, 1, 2, 3)
	w := lintest.Start(t, cli, 2)
	slots := watchSlots(t, cli, 1)
	ctx := context.Background()
	start := time.Now()
	var timeline []string
	logf := func(format string, args ...any) {
		timeline = append(timeline, fmt.Sprintf("+%6s ", time.Since(start).Round(100*time.Millisecond))+fmt.Sprintf(format, args...))
	}

	if _, err := c.untilGranted(ctx, 1, fleetlock.PreRebootPath); err != nil {
		t.Fatal(err)
	}
	logf("node 1: pre-reboot granted")
	n[1].kill()
	killed := time.Now()
	logf("node 1: rebooting, never to come back")

	code, e, err := c.zincati(ctx, 2, fleetlock.PreRebootPath)
	if err != nil || code == http.StatusOK || e.Kind != fleetlock.KindSlotTaken {
		t.Errorf("node 2's pre-reboot while node 1 holds the slot: %d %+v %v, want a %s refusal", code, e, err, fleetlock.KindSlotTaken)
	}
	logf("node 2: pre-reboot refused: %s (%s)", e.Kind, e.Value)
	rel := c.spawn("fleetlock-release", nil, nil, "fleetlock", "release", "--config", n[2].configPath)
	if code, err := rel.wait(time.Minute); err != nil || code != exitRefused || !strings.Contains(rel.tail(5), "is rebooting") {
		t.Errorf("release by hand while the holder reboots: exit %d, %v, want exit 3, a refusal saying it is rebooting:\n%s", code, err, rel.tail(5))
	}
	logf("fleetlock release (no --force) refused: %s", strings.TrimSpace(rel.tail(1)))

	// The agents free the slot once they have seen node 1 down for the grace.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := cli.Get(ctx, keys.FleetLockPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1's slot was not freed 2 minutes after its node died (grace %s):\n%s", c.grace, c.describe(2, 3))
		}
		time.Sleep(200 * time.Millisecond)
	}
	freedAfter := time.Since(killed)
	logf("node 1's slot freed %s after its node died (grace %s)", freedAfter.Round(100*time.Millisecond), c.grace)
	if freedAfter < c.grace {
		t.Errorf("the slot was freed %s after its holder died, before the grace (%s)", freedAfter, c.grace)
	}
	// The agent that freed it publishes its status file just after its
	// transaction, so the test may see the key gone a moment before the
	// decision is in the file (CI read it in that moment once).
	var freedBy []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		freedBy = freedBy[:0]
		for _, i := range []int{2, 3} {
			for _, d := range n[i].report().Decisions {
				if d.Action == report.ActionRebootSlotFreed {
					freedBy = append(freedBy, fmt.Sprintf("node %d: %s", i, d.Reason))
				}
			}
		}
		if len(freedBy) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(freedBy) == 0 || !strings.Contains(strings.Join(freedBy, "\n"), "has been down for") {
		t.Errorf("no agent reports freeing the slot of a holder down for the grace: %v\n%s", freedBy, c.describe(2, 3))
	}
	logf("%s", strings.Join(freedBy, "; "))

	// The dead member still votes: losing another would lose the quorum.
	code, e, err = c.zincati(ctx, 2, fleetlock.PreRebootPath)
	if err != nil || code == http.StatusOK || (e.Kind != fleetlock.KindUnhealthy && e.Kind != fleetlock.KindChange) {
		t.Errorf("node 2's pre-reboot with node 1's member dead: %d %+v %v, want a %s refusal", code, e, err, fleetlock.KindUnhealthy)
	}
	logf("node 2: pre-reboot refused: %s (%s)", e.Kind, e.Value)

	n4 := c.node(4)
	n4.start()
	n4.waitReady(joinTimeout)
	logf("node 4 (replacement) ready: node 1's member replaced")

	kinds, err := c.untilGranted(ctx, 2, fleetlock.PreRebootPath)
	if err != nil {
		t.Fatal(err)
	}
	logf("node 2: pre-reboot granted: %s (refused before: %v)", kinds[len(kinds)-1], kinds[:len(kinds)-1])
	n[2].kill()
	if _, err := n[2].proc.wait(time.Minute); err != nil {
		t.Fatal(err)
	}
	n[2].start()
	logf("node 2: rebooted")
	if kinds, err = c.untilGranted(ctx, 2, fleetlock.SteadyStatePath); err != nil {
		t.Fatal(err)
	}
	logf("node 2: steady-state granted: %s (refused before: %v)", kinds[len(kinds)-1], kinds[:len(kinds)-1])
	t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
	time.Sleep(300 * time.Millisecond) // one more sample of the slots: free again
	slots.check(t)
	n[2].waitReady(readyTimeout)
	c.proof(w, cli, 2, 3, 4)
}
