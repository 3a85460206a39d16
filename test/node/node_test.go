//go:build nodetest

package node_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestNodes boots three nodes from the rendered Ignition and checks the
// agent unit under real systemd. The checks share one cluster and run in
// order; each logs what it saw.
func TestNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("boots three systemd containers")
	}
	h := newHarness(t)

	// Node 1 alone: it registers and waits for two more founders.
	n1 := h.boot(1, bootOptions{})
	t.Run("WaitingNodeDoesNotHoldUpBoot", func(t *testing.T) { waitingNodeDoesNotHoldUpBoot(t, n1) })

	// Node 3's Podman socket is down for 30 s when its agent starts.
	n2 := h.boot(2, bootOptions{})
	n3 := h.boot(3, bootOptions{podmanSocketOutage: true})
	for _, n := range h.nodes {
		waitFor(t, 8*time.Minute, n.name+" agent active", func() (bool, string) {
			p := n.show("ActiveState", "SubState", "StatusText", "NRestarts", "Result")
			return p["ActiveState"] == "active", strings.Join([]string{p["ActiveState"], p["SubState"], p["Result"], "restarts " + p["NRestarts"], p["StatusText"]}, " | ")
		})
	}
	t.Run("ActiveOnlyAtReady", func(t *testing.T) {
		for _, n := range h.nodes {
			activeOnlyAtReady(t, n)
		}
	})
	t.Run("UserPodmanSocketBeforeAgent", func(t *testing.T) {
		for _, n := range []*node{n1, n2} {
			userPodmanSocketBeforeAgent(t, n)
		}
	})
	t.Run("PodmanSocketDownAtBoot", func(t *testing.T) { podmanSocketDownAtBoot(t, n3) })
	t.Run("StatusAsOperator", func(t *testing.T) { statusAsOperator(t, n2) })

	cli := h.client()
	w := lintest.Start(t, cli, 2)
	t.Run("WatchdogRestartsFrozenAgent", func(t *testing.T) { watchdogRestartsFrozenAgent(t, n2) })
	t.Run("ConfigErrorExits78", func(t *testing.T) { configErrorExits78(t, n1) })
	// Zincati's sequence on all three nodes at once, the writer still on.
	t.Run("RollingRebootsThroughFleetLock", func(t *testing.T) { rollingReboots(t, h, cli) })

	// The proof every fault scenario ends with.
	w.Stop()
	if w.Acked() == 0 {
		t.Fatal("the writer got no write acknowledged")
	}
	w.Verify(t, cli)
	lintest.HashKVEqual(t, cli, h.endpoints())
	t.Logf("writer: %d acknowledged writes read back, history linearizable, HashKV equal on %d members", w.Acked(), len(h.endpoints()))
}

// waitingNodeDoesNotHoldUpBoot: a founder waiting in discovery keeps its
// unit activating (no READY=1) while the node's boot completes.
func waitingNodeDoesNotHoldUpBoot(t *testing.T, n *node) {
	waitFor(t, 5*time.Minute, "node 1 waiting in discovery", func() (bool, string) {
		p := n.show("ActiveState", "StatusText")
		return p["ActiveState"] == "activating" && strings.Contains(p["StatusText"], "more members in discovery"), p["ActiveState"] + " | " + p["StatusText"]
	})
	var state string
	waitFor(t, 3*time.Minute, "boot to complete while the agent waits", func() (bool, string) {
		state, _ = n.exec("systemctl", "is-system-running")
		jobs, _ := n.exec("systemctl", "list-jobs", "--no-legend")
		return state == "running", "is-system-running: " + state + "; jobs:\n" + jobs
	})
	target, _ := n.exec("systemctl", "is-active", "multi-user.target")
	startUnit, _ := n.exec("journalctl", "--no-pager", "-o", "short-precise", "-u", "etcd-agent-start.service")
	t.Logf("%s\n%s", startUnit, excerpt(n.journal(), 3, "Starting etcd-agent", "waiting for members"))
	p := n.show("ActiveState", "SubState", "StatusText")
	t.Logf("%s: is-system-running=%s multi-user.target=%s; %s: %s/%s, STATUS=%q", n.name, state, target, unit, p["ActiveState"], p["SubState"], p["StatusText"])
	if target != "active" {
		t.Errorf("multi-user.target is %q while the agent waits, want active", target)
	}
	if p["ActiveState"] != "activating" {
		t.Errorf("%s is %s before READY=1, want activating", unit, p["ActiveState"])
	}
}

// activeOnlyAtReady: systemd reports the unit started only after the agent
// said READY=1, and the STATUS it carried is the healthy one.
func activeOnlyAtReady(t *testing.T, n *node) {
	j := n.journal()
	lines := strings.Split(j, "\n")
	started, ready, lastWait := -1, -1, -1
	for i, l := range lines {
		switch {
		case strings.Contains(l, "Started etcd-agent.service") && started < 0:
			started = i
		case strings.Contains(l, "msg=ready") && ready < 0:
			ready = i
		case strings.Contains(l, "waiting for members") || strings.Contains(l, "starting etcd") || strings.Contains(l, "membership decision"):
			if started < 0 {
				lastWait = i
			}
		}
	}
	p := n.show("ActiveState", "StatusText")
	t.Logf("%s: %s, STATUS=%q\n%s", n.name, p["ActiveState"], p["StatusText"], excerpt(j, 4, "membership decision", "msg=ready", "Started etcd-agent.service"))
	if started < 0 || ready < 0 {
		t.Fatalf("%s: journal has no Started line (%d) or no ready line (%d)", n.name, started, ready)
	}
	if started < lastWait {
		t.Errorf("%s: systemd reported the unit started (line %d) before the agent finished starting (line %d)", n.name, started, lastWait)
	}
	if !strings.Contains(p["StatusText"], "healthy") {
		t.Errorf("%s: STATUS after READY=1 is %q, want the healthy status", n.name, p["StatusText"])
	}
}

// userPodmanSocketBeforeAgent: linger and the sockets.target.wants link the
// Butane config writes have the user's podman.socket listening before the
// agent starts, so the agent never waits for it.
func userPodmanSocketBeforeAgent(t *testing.T, n *node) {
	sock, err := n.exec("systemctl", "--user", "-M", nodeUser+"@", "show", "podman.socket", "-p", "ActiveState,ActiveEnterTimestampMonotonic,ActiveEnterTimestamp")
	if err != nil {
		t.Fatalf("%s: systemctl --user show podman.socket: %v %s", n.name, err, sock)
	}
	p := n.show("ExecMainStartTimestampMonotonic", "ExecMainStartTimestamp")
	props := map[string]string{}
	for _, line := range strings.Split(sock, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	t.Logf("%s: podman.socket %s since %s; agent started %s", n.name, props["ActiveState"], props["ActiveEnterTimestamp"], p["ExecMainStartTimestamp"])
	sockAt, _ := strconv.ParseUint(props["ActiveEnterTimestampMonotonic"], 10, 64)
	agentAt, _ := strconv.ParseUint(p["ExecMainStartTimestampMonotonic"], 10, 64)
	if props["ActiveState"] != "active" || sockAt == 0 || agentAt == 0 || sockAt > agentAt {
		t.Errorf("%s: podman.socket (%s, listening at %d µs) not up before the agent started (%d µs)", n.name, props["ActiveState"], sockAt, agentAt)
	}
	if strings.Contains(n.journal(), "connecting to the etcd runtime failed") {
		t.Errorf("%s: the agent had to wait for the Podman socket", n.name)
	}
}

// podmanSocketDownAtBoot: node 3's agent found no Podman socket at boot,
// waited for it, and ended up active without a restart loop.
func podmanSocketDownAtBoot(t *testing.T, n *node) {
	j := n.journal()
	outage, _ := n.exec("journalctl", "--no-pager", "-o", "short-precise", "-u", "node-test-podman-outage.service", "-u", "node-test-podman-back.service")
	p := n.show("ActiveState", "NRestarts", "Result")
	t.Logf("%s: agent %s, %s restarts\n%s\n%s", n.name, p["ActiveState"], p["NRestarts"],
		excerpt(outage, 4, "Podman socket", "podman.socket", "Started", "Finished"),
		excerpt(j, 6, "etcd runtime", "connected to podman", "Started etcd-agent", "start-limit", "Main process exited"))
	if !strings.Contains(j, "connecting to the etcd runtime failed") {
		t.Errorf("%s: the agent never found the Podman socket down: the outage did not happen while it started", n.name)
	}
	if p["ActiveState"] != "active" || strings.Contains(j, "start-limit") {
		t.Errorf("%s: agent is %s (journal start-limit: %v), want active", n.name, p["ActiveState"], strings.Contains(j, "start-limit"))
	}
}

// statusAsOperator: `etcd-agent status` as the SSH user shows the healthy
// three-member cluster and exits 0.
func statusAsOperator(t *testing.T, n *node) {
	out, err := n.asUser("etcd-agent", "status")
	t.Logf("%s$ etcd-agent status\n%s", nodeUser, out)
	if err != nil {
		t.Fatalf("etcd-agent status as %s: %v", nodeUser, err)
	}
	for _, ip := range []string{"10.89.77.11", "10.89.77.12", "10.89.77.13"} {
		if !strings.Contains(out, ip) {
			t.Errorf("status does not list the member at %s", ip)
		}
	}
}

// watchdogRestartsFrozenAgent: a SIGSTOPped agent misses WATCHDOG=1; systemd
// kills and restarts it, and the new agent adopts the running etcd container
// (same ID, same start time).
func watchdogRestartsFrozenAgent(t *testing.T, n *node) {
	id, startedAt := n.etcdContainer()
	if id == "" {
		t.Fatalf("%s: no etcd container", n.name)
	}
	p := n.show("MainPID", "NRestarts")
	pid, restarts := p["MainPID"], n.nRestarts()
	frozen := time.Now()
	if out, err := n.exec("kill", "-STOP", pid); err != nil {
		t.Fatalf("SIGSTOP %s: %v %s", pid, err, out)
	}
	waitFor(t, 6*time.Minute, n.name+" agent restarted by the watchdog and active", func() (bool, string) {
		q := n.show("MainPID", "ActiveState", "NRestarts", "StatusText")
		return q["MainPID"] != pid && q["MainPID"] != "0" && q["ActiveState"] == "active", q["ActiveState"] + " pid " + q["MainPID"] + " restarts " + q["NRestarts"] + " | " + q["StatusText"]
	})
	took := time.Since(frozen).Round(time.Second)
	id2, startedAt2 := n.etcdContainer()
	j := n.journal()
	t.Logf("%s: agent pid %s frozen; active again after %s with pid %s; etcd container %.12s started %s → %.12s started %s\n%s", n.name, pid, took,
		n.show("MainPID")["MainPID"], id, startedAt, id2, startedAt2, excerpt(j, 6, "atchdog", "Killing", "Scheduled restart", "etcd runtime", "msg=ready"))
	if !strings.Contains(j, "Watchdog timeout") {
		t.Errorf("%s: journal shows no watchdog timeout", n.name)
	}
	if n.nRestarts() <= restarts {
		t.Errorf("%s: NRestarts %d, was %d", n.name, n.nRestarts(), restarts)
	}
	if id2 != id || startedAt2 != startedAt {
		t.Errorf("%s: etcd container restarted: %s@%s → %s@%s, want it adopted", n.name, id, startedAt, id2, startedAt2)
	}
	if !strings.Contains(j, "action=adopted") {
		t.Errorf("%s: the restarted agent did not log adopting the container", n.name)
	}
}

// configErrorExits78: a config error stops the unit with 78 and no restart
// loop; the fixed config brings it back.
func configErrorExits78(t *testing.T, n *node) {
	const cfg = "/etc/etcd-agent/config.yaml"
	if out, err := n.exec("cp", cfg, cfg+".good"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := n.exec("sh", "-c", "printf 'nodee:\\n  dataDir: /x\\n' >> "+cfg); err != nil {
		t.Fatal(err, out)
	}
	restarts := n.nRestarts()
	if out, err := n.exec("systemctl", "restart", "--no-block", unit); err != nil {
		t.Fatal(err, out)
	}
	waitFor(t, 2*time.Minute, n.name+" agent failed with 78", func() (bool, string) {
		q := n.show("ActiveState", "ExecMainStatus", "Result")
		return q["ActiveState"] == "failed" && q["ExecMainStatus"] == "78", q["ActiveState"] + " status " + q["ExecMainStatus"] + " " + q["Result"]
	})
	// RestartSec is 5s: three periods without a new start is no loop.
	time.Sleep(15 * time.Second)
	q := n.show("ActiveState", "ExecMainStatus", "Result", "NRestarts")
	j := n.journal()
	t.Logf("%s: %s, status %s, result %s, restarts %s (before %d)\n%s", n.name, q["ActiveState"], q["ExecMainStatus"], q["Result"], q["NRestarts"], restarts,
		excerpt(j, 5, "nodee", "status=78", "Failed with result", "Scheduled restart"))
	if q["ActiveState"] != "failed" || n.nRestarts() != restarts {
		t.Errorf("%s: after a config error the unit is %s with %s restarts (was %d), want failed and no restart", n.name, q["ActiveState"], q["NRestarts"], restarts)
	}
	if out, err := n.exec("mv", cfg+".good", cfg); err != nil {
		t.Fatal(err, out)
	}
	if out, err := n.exec("systemctl", "restart", unit); err != nil {
		t.Fatalf("restart with the fixed config: %v %s", err, out)
	}
	waitFor(t, 3*time.Minute, n.name+" active again", func() (bool, string) {
		q := n.show("ActiveState", "StatusText")
		return q["ActiveState"] == "active", q["ActiveState"] + " | " + q["StatusText"]
	})
}
