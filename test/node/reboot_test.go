//go:build nodetest

package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/butane"
)

// Zincati asks again every 5 minutes; the nodes' stand-in asks every second.
const (
	askInterval = "1s"
	// turnTimeout bounds one request loop of a node (the others' turns
	// included for pre-reboot) and one boot.
	turnTimeout = 10 * time.Minute
)

// timeline is the rolling reboots' log, shared by the nodes' goroutines
// and the slot sampler; problems are the violations they saw.
type timeline struct {
	start    time.Time
	mu       sync.Mutex
	lines    []string
	problems []string
	// handOvers counts grants that moved leadership away first.
	handOvers int
}

func (tl *timeline) logf(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.lines = append(tl.lines, fmt.Sprintf("+%6s ", time.Since(tl.start).Round(100*time.Millisecond))+fmt.Sprintf(format, args...))
}

func (tl *timeline) problem(format string, args ...any) {
	tl.logf("PROBLEM: "+format, args...)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.problems = append(tl.problems, fmt.Sprintf(format, args...))
}

// rollingReboots drives on every node at once what Zincati's fleet_lock
// strategy does, from inside the node, with node-fleetlock reading base_url
// from the rendered Zincati fragment: pre-reboot until granted; then a real
// reboot of the systemd node (`systemctl reboot` in it: systemd stops the
// agent and the user's etcd, PID 1 exits, and the test starts the same
// container again with its disk, as the machine's firmware would); the
// agent unit active again (Type=notify: READY=1 through systemd); then
// steady-state until granted. The slots are sampled from the host
// throughout: never more than one holder, and each node held one. A granted
// node never leads when it goes down (leadership moved first), and its etcd
// container went down with it and started again; the members are the same
// ones at the end (every node came back from its own data).
func rollingReboots(t *testing.T, h *harness, cli *clientv3.Client) {
	// Node 3's Podman socket outage was for its first boot only.
	if err := os.Remove(filepath.Join(h.nodes[2].dir, "podman-socket-outage")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	frag, err := h.nodes[0].exec("cat", butane.ZincatiConfigPath)
	if err != nil {
		t.Fatalf("%s: no rendered Zincati fragment: %v %s", h.nodes[0].name, err, frag)
	}
	t.Logf("%s:\n%s", butane.ZincatiConfigPath, frag)
	for _, n := range h.nodes {
		if typ := n.show("Type")["Type"]; typ != "notify" {
			t.Fatalf("%s: %s has Type=%q: active would not mean READY=1", n.name, unit, typ)
		}
	}

	membersBefore := memberIDs(t, cli)
	tl := &timeline{start: time.Now()}
	stopSlots := watchSlots(cli, tl)
	ask := make(chan struct{})
	done := make(chan string, len(h.nodes))
	for _, n := range h.nodes {
		go func() {
			<-ask // the three ask at the same moment
			done <- n.zincatiCycle(tl, cli)
		}()
	}
	close(ask)
	var rebooted []string
	for range h.nodes {
		if name := <-done; name != "" {
			rebooted = append(rebooted, name)
		}
	}
	took := time.Since(tl.start).Round(time.Second)
	time.Sleep(500 * time.Millisecond) // a last sample: the slot free again
	holders := stopSlots()

	tl.mu.Lock()
	t.Logf("rolling reboots in %s:\n%s", took, strings.Join(tl.lines, "\n"))
	for _, p := range tl.problems {
		t.Error(p)
	}
	if tl.handOvers == 0 {
		t.Error("no grant moved leadership away: the leader's node was rebooted without a hand-over, or never")
	}
	tl.mu.Unlock()
	if len(rebooted) != len(h.nodes) {
		t.Errorf("nodes rebooted through FleetLock: %v, want all %d", rebooted, len(h.nodes))
	}
	for _, n := range h.nodes {
		if !slices.Contains(holders, zincatiID(n)) {
			t.Errorf("%s (%s) was never seen holding the slot (holders seen: %v)", n.name, zincatiID(n), holders)
		}
	}
	// Each node came back with its disk: the same members, none replaced.
	if after := memberIDs(t, cli); !slices.Equal(after, membersBefore) {
		t.Errorf("members %v after the reboots, were %v: a node came back as a new member", after, membersBefore)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if left, err := fleetlock.Read(ctx, cli); err != nil || len(left) != 0 {
		t.Errorf("after every steady-state: slots %v (%v), want none held", left, err)
	}
}

// zincatiID is the node's Zincati ID (Zincati derives its own from the
// machine ID; the stand-in is given one).
func zincatiID(n *node) string { return "zincati-" + strings.TrimPrefix(n.name, namePrefix) }

// zincatiCycle is one node's turn: pre-reboot, reboot, READY=1,
// steady-state. It returns the node's name once all of it happened, ""
// when a step failed (the failure is in tl's problems).
func (n *node) zincatiCycle(tl *timeline, cli *clientv3.Client) string {
	granted, refused, err := n.fleetlock("pre-reboot")
	if err != nil {
		tl.problem("%s: pre-reboot: %v", n.name, err)
		return ""
	}
	tl.logf("%s: pre-reboot granted: %s (refused before: %s)", n.name, granted, refused)
	if strings.Contains(granted, "leadership moved") {
		tl.mu.Lock()
		tl.handOvers++
		tl.mu.Unlock()
	}
	if leads, err := n.leads(cli); err != nil || leads {
		tl.problem("%s: granted its reboot while its member leads (%v): leadership must move first", n.name, err)
	}

	before := n.startedAt()
	etcdID, etcdStarted := n.etcdContainer()
	if out, err := n.exec("systemctl", "reboot"); err != nil {
		tl.logf("%s: systemctl reboot: %v %s", n.name, err, out) // the exec may lose its node
	}
	tl.logf("%s: systemctl reboot", n.name)
	code, err := waitExited(n.name)
	if err != nil {
		tl.problem("%s: did not go down after systemctl reboot: %v", n.name, err)
		return ""
	}
	tl.logf("%s: down (PID 1 exited with %s); starting the node again with its disk", n.name, code)
	if out, err := podmanCmd("start", n.name); err != nil {
		tl.problem("%s: podman start: %v %s", n.name, err, out)
		return ""
	}
	if after := n.startedAt(); after == before {
		tl.problem("%s: container start time unchanged (%s): no reboot happened", n.name, after)
		return ""
	}

	var last string
	deadline := time.Now().Add(turnTimeout)
	for {
		p := n.show("ActiveState", "StatusText")
		last = p["ActiveState"] + " | " + p["StatusText"]
		if p["ActiveState"] == "active" {
			break
		}
		if time.Now().After(deadline) {
			tl.problem("%s: %s not active within %s of the boot; last: %s", n.name, unit, turnTimeout, last)
			return ""
		}
		time.Sleep(time.Second)
	}
	etcdID2, etcdStarted2 := n.etcdContainer()
	tl.logf("%s: booted, %s active (READY=1): %s; etcd container %.12s started %s → %.12s started %s",
		n.name, unit, last, etcdID, etcdStarted, etcdID2, etcdStarted2)
	if etcdID == "" || etcdID2 == "" || (etcdID2 == etcdID && etcdStarted2 == etcdStarted) {
		tl.problem("%s: the etcd container did not go down with the node and come back (%.12s@%s → %.12s@%s)", n.name, etcdID, etcdStarted, etcdID2, etcdStarted2)
	}

	granted, refused, err = n.fleetlock("steady-state")
	if err != nil {
		tl.problem("%s: steady-state: %v", n.name, err)
		return ""
	}
	tl.logf("%s: steady-state granted: %s (refused before: %s)", n.name, granted, refused)
	return n.name
}

// fleetlock runs node-fleetlock in the node for op until it is granted; it
// returns the grant's reason and the refusals' kinds on the way (in order,
// consecutive repeats counted).
func (n *node) fleetlock(op string) (granted, refused string, err error) {
	out, err := n.exec("/opt/node/node-fleetlock", "--id", zincatiID(n), "--interval", askInterval,
		"--timeout", turnTimeout.String(), op)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil {
		return "", "", fmt.Errorf("%v; last answers:\n%s", err, strings.Join(lines[max(0, len(lines)-5):], "\n"))
	}
	var kinds []string
	counts := map[int]int{}
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 3 {
			return "", "", fmt.Errorf("unexpected node-fleetlock output %q", l)
		}
		switch f[2] {
		case "granted":
			if len(f) == 4 {
				granted = f[3]
			}
			continue
		case "no_error_body":
			return "", "", fmt.Errorf("a refusal without the FleetLock error body: %q", l)
		}
		if len(kinds) == 0 || kinds[len(kinds)-1] != f[2] {
			kinds = append(kinds, f[2])
		}
		counts[len(kinds)-1]++
	}
	var b strings.Builder
	for i, k := range kinds {
		fmt.Fprintf(&b, "%s×%d ", k, counts[i])
	}
	if b.Len() == 0 {
		return granted, "none", nil
	}
	return granted, strings.TrimSpace(b.String()), nil
}

// leads reports whether the node's member leads, as it says itself.
func (n *node) leads(cli *clientv3.Client) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, "https://"+n.ip+":2379")
	if err != nil {
		return false, err
	}
	return st.Leader == st.Header.MemberId, nil
}

// startedAt is when Podman last started the node container.
func (n *node) startedAt() string {
	out, _ := podmanCmd("inspect", "--format", "{{.State.StartedAt}}", n.name)
	return out
}

// waitExited waits for the node container to stop and returns its exit code.
func waitExited(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "podman", "wait", name).CombinedOutput()
	out := strings.TrimSpace(string(b))
	if err != nil {
		return "", fmt.Errorf("podman wait: %v %s", err, out)
	}
	return out, nil
}

// watchSlots samples the reboot slots every 200 ms until the returned stop
// is called: each change of holders goes into tl, more than one holder is a
// problem. stop returns every holder ID seen.
func watchSlots(cli *clientv3.Client, tl *timeline) (stop func() []string) {
	ctx, cancel := context.WithCancel(context.Background())
	var seen []string
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		prev, samples := "", 0
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			holders, err := fleetlock.Read(rctx, cli)
			rcancel()
			if err == nil {
				samples++
				var ids []string
				for _, h := range holders {
					ids = append(ids, h.ID)
					if !slices.Contains(seen, h.ID) {
						seen = append(seen, h.ID)
					}
				}
				now := strings.Join(ids, ",")
				if len(ids) > 1 {
					tl.problem("%d reboot slot holders at once: %s", len(ids), now)
				}
				if now != prev || samples == 1 {
					if now == "" {
						tl.logf("slot free")
					} else {
						tl.logf("slot held by %s", now)
					}
					prev = now
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		if samples == 0 {
			tl.problem("the reboot slots were never sampled")
		}
	}()
	return func() []string {
		cancel()
		<-finished
		return seen
	}
}

// memberIDs is the cluster's member IDs (hex), sorted.
func memberIDs(t *testing.T, cli *clientv3.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatalf("member list: %v", err)
	}
	var ids []string
	for _, m := range resp.Members {
		ids = append(ids, fmt.Sprintf("%x", m.ID))
	}
	slices.Sort(ids)
	return ids
}
