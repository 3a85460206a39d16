package fault_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkHookReplacement measures what replacing the leader's instance
// costs a client writing back to back (startWriteProbe: each put with a
// 500 ms deadline unless ETCD_AGENT_BENCH_PUT_DEADLINE says otherwise,
// through the members that stay): the longest gap between
// two successful writes and the p99 put latency, from just before the
// replacement (node 4, a new address) boots until it is a voter and the
// old member is gone (medians over the runs), and the puts that failed.
// "hook": the group's instance-refresh step (replaceStep): node 4 waits as
// a standby and completes its launch hook, the leader's IMDS says
// Terminated, node 4 joins as a learner on the seat offer and is
// promoted, and the leader's member leaves as `etcd-agent leave` does
// (leadership handed over first) and completes its terminate hook.
// "naive": the leader's node is killed with no hand-over (the followers
// elect a leader after the 1 s election timeout), then node 4 boots,
// removes the dead member after deadMemberGrace (3 s) and joins in its
// place, as the agent replaces dead members. Real agent processes,
// embedded etcd.
//
//	go test -run '^$' -bench HookReplacement -benchtime 3x ./test/fault/
func BenchmarkHookReplacement(b *testing.B) {
	benchReplacements(b, func(c *cluster, cli *clientv3.Client) []int { return []int{c.leaderOf(cli, 1, 2, 3)} })
}

// BenchmarkInstanceRefresh is BenchmarkHookReplacement for a whole
// instance refresh of the 3-node group: nodes 4, 5 and 6 replace nodes 1,
// 2 and 3 in turn ("hook": TestInstanceRefresh's steps; "naive": each old
// node killed, then its replacement boots and replaces the dead member,
// before the next). The window is the whole refresh; the probe's client
// follows the members, each step through the members that stay.
//
//	go test -run '^$' -bench InstanceRefresh -benchtime 3x ./test/fault/
func BenchmarkInstanceRefresh(b *testing.B) {
	benchReplacements(b, func(*cluster, *clientv3.Client) []int { return []int{1, 2, 3} })
}

// benchReplacements runs both modes: nodes 4, 5, ... replace the nodes
// olds picks in a fresh 3-node cluster, one after the other, under a
// write probe.
func benchReplacements(b *testing.B, olds func(c *cluster, cli *clientv3.Client) []int) {
	for _, mode := range []string{"hook", "naive"} {
		b.Run(mode, func(b *testing.B) {
			var runs []probeRun
			for i := range b.N {
				b.StopTimer()
				c := newCluster(b)
				c.useV3Discovery(3)
				var g *asgGroup
				if mode == "hook" {
					g = newASG(c, 6, time.Minute)
				}
				n := c.form(3)
				cli := c.client(1, 2, 3)
				c.waitMembers(cli, time.Minute, 1, 2, 3)
				tl := newTimeline(b)
				order := olds(c, cli)
				members := []int{1, 2, 3}
				// The probe writes through the members that stay: what
				// a client sees of the cluster, not of a dead endpoint.
				pc := c.client(without(members, order[0])...)
				probe := startWriteProbe(pc, probeDeadline(b))
				time.Sleep(2 * time.Second)
				from := time.Now()
				b.StartTimer()
				for k, old := range order {
					repl := 4 + k
					pc.SetEndpoints(c.endpoints(without(members, old)...)...)
					if g != nil {
						g.replaceStep(tl, nil, n[old], repl)
					} else {
						n[old].kill()
						if _, err := n[old].proc.wait(time.Minute); err != nil {
							b.Fatal(err)
						}
						tl.mark("node %d killed", old)
						nr := c.node(repl)
						nr.start()
						nr.waitReady(joinTimeout)
						tl.mark("node %d ready: it replaced node %d", repl, old)
					}
					members = append(without(members, old), repl)
				}
				b.StopTimer()
				to := time.Now()
				pc.SetEndpoints(c.endpoints(members...)...)
				time.Sleep(time.Second)
				probe.stop()
				// This run's cluster stops now: the next run has the
				// machine to itself.
				c.killAll()
				// Where the failed puts fell: at a hand-over (hook) or in
				// the election (naive)?
				var when []string
				for _, at := range probe.failedIn(from, to) {
					when = append(when, fmt.Sprintf("put failed +%.3fs", at.Sub(from).Seconds()))
				}
				for _, old := range order {
					if at, ok := logTime(n[old].proc.log, "leave: handed leadership over"); ok {
						when = append(when, fmt.Sprintf("node %d handed leadership over +%.3fs", old, at.Sub(from).Seconds()))
					}
				}
				runs = append(runs, probe.run(fmt.Sprintf("run %d: nodes %v replaced (%s)", i+1, order, strings.Join(when, ", ")), from, to))
			}
			reportProbeRuns(b, runs)
		})
	}
}
