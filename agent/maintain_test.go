package agent_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// maintCluster starts three agents (and a discovery service) with
// short maintenance rounds and etcd's periodic compaction keeping 5s, edits
// applied to each node's config.
func maintCluster(t testing.TB, edit func(*config.Config)) ([]*node, *clientv3.Client, []string) {
	t.Helper()
	m := startMaint(t, edit)
	return m.nodes, m.cli, m.endpoints
}

// maint is a maintCluster whose agents can be restarted with a new config.
type maint struct {
	h         *harness
	ctx       context.Context
	token     string
	nodes     []*node
	cli       *clientv3.Client
	endpoints []string
}

func startMaint(t testing.TB, edit func(*config.Config)) *maint {
	t.Helper()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := &maint{h: h, ctx: ctx, token: h.startDiscovery(ctx, 3)}
	for i := 1; i <= 3; i++ {
		m.nodes = append(m.nodes, m.start(i, edit))
	}
	nodes := m.nodes
	var endpoints []string
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
		endpoints = append(endpoints, n.agent.Report().ClientURL)
	}
	m.cli = h.client(strings.Join(endpoints, ","), nodes[0].certDir())
	t.Cleanup(func() { m.cli.Close() })
	m.endpoints = endpoints
	return m
}

// start writes node i's config (short maintenance rounds, etcd's periodic
// compaction keeping 5s, then edit) and runs its agent.
func (m *maint) start(i int, edit func(*config.Config)) *node {
	cfg := m.h.config(i, 3, m.h.v3Discovery(m.token))
	cfg.Etcd.AutoCompactionRetention = config.Duration(5 * time.Second)
	cfg.Maintenance.Interval = config.Duration(time.Second)
	cfg.Maintenance.DefragPace = config.Duration(3 * time.Second)
	edit(cfg)
	return m.h.start(m.ctx, i, cfg)
}

// fill puts 1 MiB values under prefix until etcd refuses one with NOSPACE,
// and returns how many it put.
func fill(t testing.TB, cli *clientv3.Client, prefix string, limit int) int {
	t.Helper()
	value := strings.Repeat("x", 1<<20)
	for i := range limit {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cli.Put(ctx, fmt.Sprintf("%s%04d", prefix, i), value)
		cancel()
		switch {
		case err == nil:
		case strings.Contains(err.Error(), "database space exceeded"):
			return i
		default:
			t.Fatalf("put %s%04d: %v", prefix, i, err)
		}
	}
	return limit
}

func noSpaceAlarms(t testing.TB, cli *clientv3.Client) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.AlarmList(ctx)
	if err != nil {
		t.Fatalf("alarm list: %v", err)
	}
	n := 0
	for _, a := range resp.Alarms {
		if a.Alarm == pb.AlarmType_NOSPACE {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, limit, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestNoSpaceRecoveredByAgents: with a 64 MiB quota, 1 MiB values are put
// until etcd raises NOSPACE. While defragmentation can make room, the agents
// compact, defragment and disarm, and the writes go on; once the live data
// itself does not fit, the alarm is kept and the coordinating agent's
// report says exactly why and what to do. When the big keys are deleted,
// the agents clear the alarm with no command typed (the leader defragmented
// last) and writes succeed again. A writer runs throughout: every write
// acknowledged is read back, the history is linearizable, the members'
// hashes agree.
func TestNoSpaceRecoveredByAgents(t *testing.T) {
	t.Parallel()
	nodes, cli, endpoints := maintCluster(t, func(c *config.Config) {
		c.Etcd.QuotaBackendBytes = 64 << 20
		// A kept alarm is measured again after a pace: not within the test.
		c.Maintenance.DefragPace = config.Duration(time.Minute)
	})
	w := lintest.Start(t, cli, 1)

	kept := func() *node {
		for _, n := range nodes {
			if m := n.agent.Report().Maintenance; m != nil && m.NoSpace.State == report.NoSpaceKept {
				return n
			}
		}
		return nil
	}
	var keeper *node
	put, recovered := 0, 0
	for keeper == nil {
		if put > 200 {
			t.Fatalf("%d MiB put into a 64 MiB quota and the alarm never kept", put)
		}
		if n := fill(t, cli, fmt.Sprintf("big/%04d-", put), 1); n == 1 {
			put++
			continue
		}
		if noSpaceAlarms(t, cli) == 0 {
			continue // disarmed in between
		}
		waitFor(t, 2*time.Minute, "NOSPACE disarmed or kept", func() (bool, string) {
			keeper = kept()
			return keeper != nil || noSpaceAlarms(t, cli) == 0, reportsNext(nodes)
		})
		if keeper == nil {
			recovered++
			t.Logf("NOSPACE after %d MiB: recovered by the agents", put)
		}
	}
	t.Logf("NOSPACE after %d MiB: kept by node %d's agent (%d recoveries before)", put, keeper.i, recovered)

	// Kept, round after round, without defragmenting again.
	count := func() (n int) {
		for _, nd := range nodes {
			n += len(nd.agent.Report().Maintenance.Defrags)
		}
		return n
	}
	before := count()
	time.Sleep(5 * time.Second) // five more rounds
	ns := keeper.agent.Report().Maintenance.NoSpace
	if ns.State != report.NoSpaceKept {
		t.Fatalf("node %d: NOSPACE %s after five more rounds: %s", keeper.i, ns.State, ns.Message)
	}
	for _, want := range []string{"live data does not fit the quota", "quota 64 MiB", "in use", "delete data", "raise etcd.quotaBackendBytes"} {
		if !strings.Contains(ns.Message, want) {
			t.Errorf("node %d: NOSPACE message %q lacks %q", keeper.i, ns.Message, want)
		}
	}
	if ns.Since.IsZero() {
		t.Errorf("node %d: NOSPACE since is not set", keeper.i)
	}
	for _, n := range nodes {
		if n != keeper {
			if ns := n.agent.Report().Maintenance.NoSpace; ns.State != report.NoSpaceRecovering || !strings.Contains(ns.Message, "leader's agent") {
				t.Errorf("node %d: NOSPACE %s %q, want the leader's agent named", n.i, ns.State, ns.Message)
			}
		}
	}
	if noSpaceAlarms(t, cli) == 0 {
		t.Fatal("the NOSPACE alarm was disarmed while the live data fills the quota")
	}
	if after := count(); after != before {
		t.Errorf("%d defragmentations while the alarm was kept", after-before)
	}
	t.Logf("kept: %s", ns.Message)

	// Deleting the big keys (deletes work under NOSPACE) is all the
	// operator does.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deleted := time.Now()
	if _, err := cli.Delete(ctx, "big/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("delete the big keys: %v", err)
	}
	waitFor(t, 2*time.Minute, "NOSPACE disarmed by the agents", func() (bool, string) {
		return noSpaceAlarms(t, cli) == 0, reportsNext(nodes)
	})
	t.Logf("NOSPACE disarmed %s after the delete", time.Since(deleted).Round(time.Millisecond))
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if _, err := cli.Put(pctx, "after-nospace", "ok"); err != nil {
		t.Fatalf("write after the recovery: %v", err)
	}

	// What the agents did since the delete: every member defragmented, the
	// leader last, and one disarm.
	var defrags []report.Defrag
	disarms := 0
	for _, n := range nodes {
		r := n.agent.Report()
		for _, d := range r.Maintenance.Defrags {
			if d.At.After(deleted) {
				defrags = append(defrags, d)
			}
		}
		for _, d := range r.Decisions {
			if d.Action == report.ActionDisarm && d.At.After(deleted) {
				disarms++
			}
		}
	}
	checkDefragOrder(t, defrags, 3, false)
	for _, d := range defrags {
		if !d.NoSpace {
			t.Errorf("defrag of %s at %s not part of the NOSPACE recovery", d.Member, d.At)
		}
	}
	if disarms != 1 {
		t.Errorf("%d disarm decisions since the delete, want 1", disarms)
	}
	waitFor(t, 10*time.Second, "reports show no NOSPACE", func() (bool, string) {
		for _, n := range nodes {
			if ns := n.agent.Report().Maintenance.NoSpace; ns.State != report.NoSpaceNone {
				return false, fmt.Sprintf("node %d: %s %s", n.i, ns.State, ns.Message)
			}
		}
		return true, ""
	})
	w.Verify(t, cli)
	lintest.HashKVEqual(t, cli, endpoints)
}

func reportsNext(nodes []*node) string {
	var s []string
	for _, n := range nodes {
		if m := n.agent.Report().Maintenance; m != nil {
			s = append(s, fmt.Sprintf("node %d: %s", n.i, m.Next))
		}
	}
	return strings.Join(s, "; ")
}

// TestDefragFragmentedUnderLoad: values written and deleted leave every
// member's database mostly unused once etcd compacts; the agents
// defragment the members one at a time, followers first, the leader last
// after moving leadership away, paced, while a writer runs: no write fails,
// every acknowledged write is read back, the history is linearizable and
// the members' hashes agree.
func TestDefragFragmentedUnderLoad(t *testing.T) {
	nodes, cli, endpoints := maintCluster(t, func(c *config.Config) {
		c.Maintenance.DefragFreeBytes = 8 << 20
		c.Maintenance.DefragFreeRatio = 0.5
	})
	w := lintest.Start(t, cli, 2)
	// 30 MiB written, 20 MiB of it deleted: once etcd compacts, two thirds
	// of every member's file is unused and the rest must be copied.
	if n := fill(t, cli, "frag/", 30); n != 30 {
		t.Fatalf("NOSPACE after %d values", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// One transaction, one revision: a periodic compaction frees all 20 at
	// once, or none, so no member looks fragmented twice (deleted one by
	// one, a compaction between the deletes made a member fragmented, then
	// fragmented again after its defragmentation).
	var dels []clientv3.Op
	for i := range 30 {
		if i%3 != 0 {
			dels = append(dels, clientv3.OpDelete(fmt.Sprintf("frag/%04d", i)))
		}
	}
	if _, err := cli.Txn(ctx).Then(dels...).Commit(); err != nil {
		t.Fatal(err)
	}
	var defrags []report.Defrag
	waitFor(t, 3*time.Minute, "every member defragmented", func() (bool, string) {
		defrags = defrags[:0]
		var next []string
		for _, n := range nodes {
			m := n.agent.Report().Maintenance
			if m == nil {
				continue
			}
			defrags = append(defrags, m.Defrags...)
			next = append(next, fmt.Sprintf("node %d: %s", n.i, m.Next))
		}
		return len(defrags) >= 3, fmt.Sprintf("%d defragmented; %s", len(defrags), strings.Join(next, "; "))
	})
	checkDefragOrder(t, defrags, 3, true)
	pace := nodes[0].cfg.Maintenance.DefragPace.D()
	slices.SortFunc(defrags, func(a, b report.Defrag) int { return a.At.Compare(b.At) })
	for i := 1; i < len(defrags); i++ {
		begin := defrags[i].At.Add(-time.Duration(defrags[i].TookSeconds * float64(time.Second)))
		if gap := begin.Sub(defrags[i-1].At); gap < pace {
			t.Errorf("%s defragmented %s after %s: paced by less than %s", defrags[i].Member, gap, defrags[i-1].Member, pace)
		}
	}
	for _, d := range defrags {
		if d.NoSpace || d.After >= d.Before {
			t.Errorf("defrag of %s: nospace=%v, %d → %d bytes", d.Member, d.NoSpace, d.Before, d.After)
		}
	}
	// The reports show the members' fragmentation gone, and the last defrag.
	waitFor(t, 30*time.Second, "reports show the members defragmented", func() (bool, string) {
		for _, n := range nodes {
			m := n.agent.Report().Maintenance
			if m.LastDefrag == nil || len(m.Members) != 3 {
				return false, fmt.Sprintf("node %d: %+v", n.i, m)
			}
			for _, ms := range m.Members {
				if ms.DBSize-ms.DBSizeInUse >= 8<<20 {
					return false, fmt.Sprintf("node %d sees %s with %d of %d bytes unused", n.i, ms.Name, ms.DBSize-ms.DBSizeInUse, ms.DBSize)
				}
			}
		}
		return true, ""
	})
	time.Sleep(2 * time.Second) // writes after the last defragmentation
	// A put that reaches the leader while it hands leadership over is
	// dropped before it enters the log (etcd's leader transfer; safe to
	// retry, as etcd clients such as kube-apiserver do): with "raft proposal
	// dropped" when the client sent it to the leader, silently (the client
	// times out) when another member forwarded it. Any other failure is the
	// agents' fault.
	if bad := w.Unexplained(t, cli); len(bad) > 0 {
		t.Errorf("%d writes failed during the defragmentations other than by the leader transfer: %q", len(bad), bad)
	} else if f := w.Failed(); f > 0 {
		t.Logf("%d puts dropped during the leader transfer (%d reported by raft): %q", f, w.Dropped(), w.Errors())
	}
	t.Logf("%d writes acknowledged, %d failed", w.Acked(), w.Failed())
	w.Verify(t, cli)
	lintest.HashKVEqual(t, cli, endpoints)
}

// checkDefragOrder checks that the defragmentations succeeded, one at a
// time, covering members members (each exactly once when once), and that
// the member that led was the last, with leadership moved away first.
func checkDefragOrder(t *testing.T, defrags []report.Defrag, members int, once bool) {
	t.Helper()
	defrags = slices.Clone(defrags)
	slices.SortFunc(defrags, func(a, b report.Defrag) int { return a.At.Compare(b.At) })
	seen := map[string]bool{}
	for i, d := range defrags {
		t.Logf("defragmented %s by %s at %s in %.2fs: %d → %d bytes, leader %v (moved to %q): %s",
			d.Member, d.By, d.At.Format(time.StampMilli), d.TookSeconds, d.Before, d.After, d.WasLeader, d.MovedTo, d.Reason)
		if d.Error != "" {
			t.Errorf("defrag of %s failed: %s", d.Member, d.Error)
		}
		if seen[d.Member] && once {
			t.Errorf("%s defragmented twice", d.Member)
		}
		seen[d.Member] = true
		if i > 0 {
			prevEnd := defrags[i-1].At
			if begin := d.At.Add(-time.Duration(d.TookSeconds * float64(time.Second))); begin.Before(prevEnd) {
				t.Errorf("defragmentations of %s and %s overlap", defrags[i-1].Member, d.Member)
			}
		}
		if last := i == len(defrags)-1; d.WasLeader != last {
			t.Errorf("defrag %d of %d (%s): was leader %v; want the leader last, and only it", i+1, len(defrags), d.Member, d.WasLeader)
		}
		if d.WasLeader && (d.MovedTo == "" || d.MovedTo == d.Member) {
			t.Errorf("leader %s defragmented without moving leadership away (moved to %q)", d.Member, d.MovedTo)
		}
	}
	if len(seen) != members || (once && len(defrags) != members) {
		t.Errorf("%d defragmentations of %d members, want every one of %d members", len(defrags), len(seen), members)
	}
}

// TestNoSpaceRecoveredAfterRestartDuringAlarm: a 3-node cluster (quota
// 64 MiB) is filled until etcd raises NOSPACE, under a writer. Then every
// agent is restarted with the quota raised to 256 MiB, as the documented
// quota raise does. A member under NOSPACE is not ready, so the restarted
// agents never reach READY: the NOSPACE recovery must not wait for it. The
// agents disarm the alarm with no command typed (every file is under the new
// quota), the members become ready, writes succeed again, and every
// acknowledged write is read back, the history is linearizable, the
// members' hashes agree.
func TestNoSpaceRecoveredAfterRestartDuringAlarm(t *testing.T) {
	t.Parallel()
	small := func(c *config.Config) {
		c.Etcd.QuotaBackendBytes = 64 << 20
		c.Maintenance.DefragPace = config.Duration(time.Minute)
		// etcd 3.7.3 starts its periodic compactor before the server: a
		// restart whose initial corruption check (the peers restart too)
		// outlasts the retention panics in the compactor's first compaction.
		c.Etcd.AutoCompactionRetention = config.Duration(time.Minute)
	}
	m := startMaint(t, small)
	w := lintest.Start(t, m.cli, 1)
	for put := 0; noSpaceAlarms(t, m.cli) == 0; {
		if put > 200 {
			t.Fatalf("%d MiB put into a 64 MiB quota and no NOSPACE alarm stayed", put)
		}
		put += fill(t, m.cli, fmt.Sprintf("big/%04d-", put), 200-put)
		t.Logf("NOSPACE after %d MiB", put)
	}

	for _, n := range m.nodes {
		n.stop()
	}
	// Embedded etcd stopped with its agent: the alarm waits in each
	// member's backend for the restart.
	restarted := time.Now()
	for k, n := range m.nodes {
		m.nodes[k] = m.start(n.i, func(c *config.Config) {
			small(c)
			c.Etcd.QuotaBackendBytes = 256 << 20
		})
	}
	describe := func() string {
		var s []string
		for _, n := range m.nodes {
			r := n.agent.Report()
			next := ""
			if r.Maintenance != nil {
				next = r.Maintenance.Next
			}
			s = append(s, fmt.Sprintf("node %d: %s %q, maintenance: %q", n.i, r.Phase, r.Message, next))
		}
		return strings.Join(s, "; ")
	}
	waitFor(t, 2*time.Minute, "NOSPACE disarmed by the restarted agents", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := m.cli.AlarmList(ctx)
		if err != nil {
			return false, fmt.Sprintf("alarm list: %v; %s", err, describe())
		}
		return len(resp.Alarms) == 0, fmt.Sprintf("alarms %v; %s", resp.Alarms, describe())
	})
	t.Logf("NOSPACE disarmed %s after the restart", time.Since(restarted).Round(time.Millisecond))
	for _, n := range m.nodes {
		n.waitReady(t, readyTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.cli.Put(ctx, "after-nospace", "ok"); err != nil {
		t.Fatalf("write after the recovery: %v", err)
	}
	disarms := 0
	for _, n := range m.nodes {
		for _, d := range n.agent.Report().Decisions {
			if d.Action == report.ActionDisarm {
				disarms++
				t.Logf("node %d: %s %s", n.i, d.Action, d.Reason)
			}
		}
	}
	if disarms == 0 {
		t.Error("no agent reports the disarm")
	}
	w.Verify(t, m.cli)
	lintest.HashKVEqual(t, m.cli, m.endpoints)
}

// TestNoSpaceRecoveredWithoutTheLeadersAgent (Podman: a container outlives
// its agent): the database fills its 64 MiB quota and the leader's agent
// keeps the alarm (the live data does not fit). Then the leader's agent
// stops — its etcd goes on leading — and the big keys are deleted. The
// other agents wait for it, then one takes leadership and recovers:
// compaction, every member defragmented, the alarm disarmed, writes succeed
// again. Every acknowledged write is read back, the history is
// linearizable, the members' hashes agree.
func TestNoSpaceRecoveredWithoutTheLeadersAgent(t *testing.T) {
	t.Parallel()
	r := newRollingConfigured(t, withQuota(64<<20), nil, func(c *config.Config) {
		c.Etcd.AutoCompactionRetention = config.Duration(5 * time.Second)
		c.Maintenance.Interval = config.Duration(time.Second)
		c.Maintenance.DefragPace = config.Duration(3 * time.Second)
	})
	w := startWriter(t, r.cli, 1)
	time.Sleep(2 * time.Second)

	// The leader's agent measures and keeps the alarm; then it stops. A
	// fill that stops at NOSPACE may still fit the quota once compacted
	// and defragmented (57 MiB of 1 MiB values against a 57.6 MiB disarm
	// limit): the agents then recover and disarm, and the fill goes on.
	var leader *node
	for round := 0; leader == nil; round++ {
		if round == 5 {
			t.Fatalf("NOSPACE recovered %d times and never kept", round)
		}
		fillUntilNoSpaceAs(t, r.cli, fmt.Sprintf("%d-", round))
		waitFor(t, 2*time.Minute, "NOSPACE kept by the leader's agent, or disarmed", func() (bool, string) {
			for _, n := range r.nodes {
				if m := n.agent.Report().Maintenance; m != nil && m.NoSpace.State == report.NoSpaceKept {
					leader = n
					return true, ""
				}
			}
			return noSpaceAlarms(t, r.cli) == 0, reportsNext(r.nodes)
		})
		if leader == nil {
			t.Logf("fill %d: NOSPACE recovered by the agents (the data fit): filling on", round)
		}
	}
	leader.stop()
	stopped := time.Now()
	t.Logf("node %d's agent (its member leads) stopped; its etcd container runs on", leader.i)
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	if _, err := r.cli.Delete(ctx, "/_rolling-test/fill/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("delete the big keys: %v", err)
	}
	var others []*node
	for _, n := range r.nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	waitFor(t, 4*time.Minute, "NOSPACE disarmed by the other agents", func() (bool, string) {
		actx, acancel := context.WithTimeout(r.ctx, 5*time.Second)
		defer acancel()
		resp, err := r.cli.AlarmList(actx)
		if err != nil {
			return false, err.Error()
		}
		return len(resp.Alarms) == 0, reportsNext(others)
	})
	t.Logf("NOSPACE disarmed %s after the leader's agent stopped", time.Since(stopped).Round(time.Second))
	took := 0
	for _, n := range others {
		for _, d := range n.agent.Report().Decisions {
			if d.Action == report.ActionTakeLead {
				took++
				t.Logf("node %d: %s: %s", n.i, d.Action, d.Reason)
			}
		}
	}
	if took != 1 {
		t.Errorf("%d take-lead decisions, want 1", took)
	}
	pctx, pcancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer pcancel()
	if _, err := r.cli.Put(pctx, "/_rolling-test/after-nospace", "ok"); err != nil {
		t.Fatalf("write after the recovery: %v", err)
	}
	// The stopped agent comes back and adopts its container.
	for k, n := range r.nodes {
		if n == leader {
			r.nodes[k] = r.start(n.i, withQuota(64<<20))
			r.nodes[k].waitReady(t, readyTimeout)
		}
	}
	w.verify(t, r.cli)
	lintest.HashKVEqual(t, r.cli, r.endpoints)
}
