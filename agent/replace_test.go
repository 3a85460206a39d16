package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// joinTimeout bounds a join: the grace period (3s in the harness), learner
// catch-up and promotion.
const joinTimeout = 2 * time.Minute

// formCluster starts n founding nodes on a fresh v3 discovery token and
// waits until every one is ready.
func formCluster(t testing.TB, h *harness, ctx context.Context, n int) (string, []*node) {
	t.Helper()
	token := h.startDiscovery(ctx, n)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = h.start(ctx, i+1, h.config(i+1, n, h.v3Discovery(token)))
	}
	for _, nd := range nodes {
		nd.waitReady(t, readyTimeout)
	}
	return token, nodes
}

// clusterClient reaches every node in nodes.
func clusterClient(h *harness, nodes ...*node) *clientv3.Client {
	var eps []string
	for _, n := range nodes {
		eps = append(eps, n.agent.Report().ClientURL)
	}
	return h.client(strings.Join(eps, ","), nodes[0].certDir())
}

// members lists the cluster's members, failing on any learner.
func members(t testing.TB, cli *clientv3.Client) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, m := range resp.Members {
		if m.IsLearner {
			t.Errorf("member %s is still a learner", m.Name)
		}
		out[m.Name] = m.ID
	}
	return out
}

func names(ms map[string]uint64) []string {
	var out []string
	for n := range ms {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (h *harness) name(i int) string { return h.e.MemberName(i) }

func (h *harness) wantMembers(t testing.TB, cli *clientv3.Client, idx ...int) map[string]uint64 {
	t.Helper()
	var want []string
	for _, i := range idx {
		want = append(want, h.name(i))
	}
	slices.Sort(want)
	got := members(t, cli)
	if !slices.Equal(names(got), want) {
		t.Fatalf("members = %v, want %v", names(got), want)
	}
	return got
}

// TestReplaceNodeWithNewIP: an instance dies and a fresh one with a new IP
// and an empty disk takes its place, with nobody's help, while a client
// keeps writing.
func TestReplaceNodeWithNewIP(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	w := startWriter(t, cli, 2)

	nodes[2].stop() // the instance is gone, its member with it
	fresh := h.start(ctx, 4, h.config(4, 3, h.v3Discovery(token)))
	msgs := fresh.waitReady(t, joinTimeout)
	matchSequence(t, msgs, []string{
		`^STATUS=identity$`,
		`^STATUS=reading node identity from static$`,
		`^STATUS=(certificates|issuing certificates from .*)$`,
		`^STATUS=(membership|registering in discovery|waiting for 0 more members in discovery \(3/3 registered\))$`,
		`^STATUS=(waiting for the cluster's membership lock|standby: .*down for.*)$`,
		`^STATUS=removing member ` + regexp.QuoteMeta(h.name(3)) + `: .*$`,
		`^STATUS=adding this node as a learner: .*$`,
		`^STATUS=(etcd|starting etcd \(embedded\)|ready|learner, .*|degraded: .*)$`,
		`^READY=1\nSTATUS=healthy, leader etcd-127-\d+-\d+-\d+, 3/3 voters$`,
	})
	cli.SetEndpoints(nodes[0].agent.Report().ClientURL, nodes[1].agent.Report().ClientURL, fresh.agent.Report().ClientURL)
	h.wantMembers(t, cli, 1, 2, 4)
	w.verify(t, cli)
	if !slices.ContainsFunc(fresh.agent.Report().Decisions, func(d report.Decision) bool { return d.Action == report.ActionRemoveMember }) {
		t.Errorf("the removal is not among the decisions shown in status: %+v", fresh.agent.Report().Decisions)
	}
}

// TestDiskLossSameIP: a node keeps its IP but loses its disk; its past self
// is removed and it is added back as a new member.
func TestDiskLossSameIP(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	before := h.wantMembers(t, cli, 1, 2, 3)
	w := startWriter(t, cli, 2)

	nodes[2].stop()
	if err := os.RemoveAll(nodes[2].cfg.Node.DataDir); err != nil {
		t.Fatal(err)
	}
	again := h.start(ctx, 3, nodes[2].cfg)
	again.waitReady(t, joinTimeout)
	after := h.wantMembers(t, cli, 1, 2, 3)
	if after[h.name(3)] == before[h.name(3)] {
		t.Fatalf("member %s kept ID %x: want a new member", h.name(3), after[h.name(3)])
	}
	w.verify(t, cli)
}

// TestJoinInterruptedAtEachStep kills the agent (as a crash would: no clean
// release) at each step of a join; the next start finishes it.
func TestJoinInterruptedAtEachStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	w := startWriter(t, cli, 1)

	for _, step := range []membership.HookStep{membership.HookAdded, membership.HookPromote} {
		t.Run(string(step), func(t *testing.T) {
			cfg := nodes[2].cfg
			nodes[2].stop()
			if err := os.RemoveAll(cfg.Node.DataDir); err != nil {
				t.Fatal(err)
			}
			crash := errors.New("killed at " + string(step))
			n := h.startWith(ctx, 3, cfg, func(o *agent.Options) {
				o.JoinHook = func(s membership.HookStep) error {
					if s == step {
						return crash
					}
					return nil
				}
			})
			select {
			case err := <-n.done:
				n.done <- err
				if !errors.Is(err, crash) {
					t.Fatalf("agent ended with %v, want the crash at %s", err, step)
				}
			case <-time.After(joinTimeout):
				t.Fatalf("agent never reached join step %s: %s", step, n.agent.Report().Message)
			}
			nodes[2] = h.start(ctx, 3, cfg)
			nodes[2].waitReady(t, joinTimeout)
			h.wantMembers(t, cli, 1, 2, 3)
		})
	}
	w.verify(t, cli)
}

// TestTwoReplacementsAtOnce: two of five instances die and two fresh ones
// start together; the membership lock lets them in one at a time.
func TestTwoReplacementsAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 5)
	cli := clusterClient(h, nodes[:3]...)
	defer cli.Close()
	w := startWriter(t, cli, 2)

	nodes[3].stop()
	nodes[4].stop()
	a := h.start(ctx, 6, h.config(6, 5, h.v3Discovery(token)))
	b := h.start(ctx, 7, h.config(7, 5, h.v3Discovery(token)))
	a.waitReady(t, joinTimeout)
	b.waitReady(t, joinTimeout)
	h.wantMembers(t, cli, 1, 2, 3, 6, 7)
	w.verify(t, cli)
}

// TestScaleUpAndLeave goes 3 → 5 by starting nodes with a larger desired
// size, then 5 → 3 with leave, which wipes the leavers' data only after the
// removal is committed and keeps them out.
func TestScaleUpAndLeave(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	w := startWriter(t, cli, 2)

	n4 := h.start(ctx, 4, h.config(4, 5, h.v3Discovery(token)))
	n5 := h.start(ctx, 5, h.config(5, 5, h.v3Discovery(token)))
	n4.waitReady(t, joinTimeout)
	n5.waitReady(t, joinTimeout)
	h.wantMembers(t, cli, 1, 2, 3, 4, 5)

	for _, n := range []*node{n4, n5} {
		logger := slog.New(slog.DiscardHandler)
		leaver, err := agent.New(agent.Options{Config: n.cfg, Identity: agent.NewIdentity(n.cfg, logger), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		var steps []string
		lctx, lcancel := context.WithTimeout(ctx, time.Minute)
		err = leaver.Leave(lctx, func(s string) { steps = append(steps, s) })
		lcancel()
		if err != nil {
			t.Fatalf("node %d leave: %v (steps %q)", n.i, err, steps)
		}
		select {
		case err := <-n.done:
			n.done <- err
			var left *agent.LeftError
			if !errors.As(err, &left) {
				t.Fatalf("node %d agent ended with %v, want LeftError", n.i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d agent still running after leave: %s", n.i, n.agent.Report().Message)
		}
		if _, err := os.Stat(n.cfg.Node.DataDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("node %d data dir not wiped: %v", n.i, err)
		}
	}
	h.wantMembers(t, cli, 1, 2, 3)

	// A node that left stays out until its marker is removed.
	back := h.start(ctx, 5, n5.cfg)
	select {
	case err := <-back.done:
		back.done <- err
		if err == nil || !strings.Contains(err.Error(), "left the cluster") {
			t.Fatalf("restarted leaver: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an agent that left started again")
	}
	w.verify(t, cli)
	h.wantMembers(t, cli, 1, 2, 3)
}

// TestReplaceNodeOnPodman is the replacement scenario with every member in
// a real container through the Podman API socket.
func TestReplaceNodeOnPodman(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.usePodman()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	w := startWriter(t, cli, 2)

	nodes[2].stop() // agent and container gone
	fresh := h.start(ctx, 4, h.config(4, 3, h.v3Discovery(token)))
	fresh.waitReady(t, joinTimeout)
	cli.SetEndpoints(nodes[0].agent.Report().ClientURL, nodes[1].agent.Report().ClientURL, fresh.agent.Report().ClientURL)
	h.wantMembers(t, cli, 1, 2, 4)
	w.verify(t, cli)
}

// TestReplaceEveryFounder replaces the three founding members one after the
// other. The last replacement finds no founder alive: it reaches the cluster
// through the endpoints the agents published in discovery.
func TestReplaceEveryFounder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 3)
	live := slices.Clone(nodes)
	for i := range 3 {
		live[i].stop()
		fresh := h.start(ctx, 4+i, h.config(4+i, 3, h.v3Discovery(token)))
		fresh.waitReady(t, joinTimeout)
		live[i] = fresh
	}
	cli := clusterClient(h, live...)
	defer cli.Close()
	h.wantMembers(t, cli, 4, 5, 6)
}

// TestLearnerThatNeverCatchesUp: a learner not promoted within the bound
// removes itself under the lock, moves its data aside and joins again.
func TestLearnerThatNeverCatchesUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	w := startWriter(t, cli, 2)

	nodes[2].stop()
	var skipping atomic.Bool
	skipping.Store(true)
	fresh := h.startWith(ctx, 4, h.config(4, 3, h.v3Discovery(token)), func(o *agent.Options) {
		o.LearnerCatchUpTimeout = 3 * time.Second
		o.JoinHook = func(step membership.HookStep) error {
			if step == membership.HookPromote && skipping.Load() {
				return agent.ErrSkipPromotion
			}
			return nil
		}
	})
	// Let the first learner time out, then let promotion through.
	deadline := time.Now().Add(joinTimeout)
	for !slices.ContainsFunc(fresh.agent.Report().Decisions, func(d report.Decision) bool { return d.Action == report.ActionMoveAside }) {
		if time.Now().After(deadline) {
			t.Fatalf("the learner never gave up: %s %s", fresh.agent.Report().Phase, fresh.agent.Report().Message)
		}
		time.Sleep(200 * time.Millisecond)
	}
	skipping.Store(false)
	fresh.waitReady(t, joinTimeout)

	moved, _ := filepath.Glob(fresh.cfg.Node.DataDir + ".removed-*")
	if len(moved) != 1 {
		t.Fatalf("moved-aside data dirs = %v, want one", moved)
	}
	var gaveUp bool
	for _, d := range fresh.agent.Report().Decisions {
		gaveUp = gaveUp || (d.Action == report.ActionRemoveMember && strings.Contains(d.Reason, "not caught up"))
	}
	if !gaveUp {
		t.Fatalf("no decision records the learner's removal: %+v", fresh.agent.Report().Decisions)
	}
	cli.SetEndpoints(nodes[0].agent.Report().ClientURL, nodes[1].agent.Report().ClientURL, fresh.agent.Report().ClientURL)
	h.wantMembers(t, cli, 1, 2, 4)
	w.verify(t, cli)
}

// TestLearnerPromotedDuringSnapshotStays: a learner not promoted in time
// gives itself up, but a promotion commits while its snapshot before the
// removal runs (here the test's own, standing in for the agent's promotion
// whose call gave up before etcd applied it). After the snapshot the
// learner plans again on a fresh survey: it is a voter now, so it stays,
// with its member ID and its data, and becomes ready.
func TestLearnerPromotedDuringSnapshotStays(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token, nodes := formCluster(t, h, ctx, 3)
	cli := clusterClient(h, nodes[:2]...)
	defer cli.Close()
	w := startWriter(t, cli, 2)

	nodes[2].stop()
	var skipping, added atomic.Bool
	skipping.Store(true)
	var promoted atomic.Uint64
	promoteErr := make(chan error, 1)
	fresh := h.startWith(ctx, 4, h.config(4, 3, h.v3Discovery(token)), func(o *agent.Options) {
		o.LearnerCatchUpTimeout = 3 * time.Second
		o.JoinHook = func(step membership.HookStep) error {
			switch {
			case step == membership.HookAdded:
				added.Store(true)
			case step == membership.HookPromote && skipping.Load():
				return agent.ErrSkipPromotion
			case step == membership.HookSnapshotted && added.Load() && skipping.Load():
				// The learner's snapshot before giving itself up: promote it.
				skipping.Store(false)
				promoteErr <- promoteLearner(cli, h.e.PeerURL(4), &promoted)
			}
			return nil
		}
	})
	select {
	case err := <-promoteErr:
		if err != nil {
			t.Fatalf("promote the learner during its snapshot: %v", err)
		}
	case <-time.After(joinTimeout):
		t.Fatalf("the learner never took its snapshot before giving up: %s %s", fresh.agent.Report().Phase, fresh.agent.Report().Message)
	}
	t.Logf("learner %x promoted while its snapshot before giving up ran", promoted.Load())
	fresh.waitReady(t, joinTimeout)

	cli.SetEndpoints(nodes[0].agent.Report().ClientURL, nodes[1].agent.Report().ClientURL, fresh.agent.Report().ClientURL)
	after := h.wantMembers(t, cli, 1, 2, 4)
	if after[h.name(4)] != promoted.Load() {
		t.Errorf("node 4 is member %x, was promoted as %x: it was removed and joined again", after[h.name(4)], promoted.Load())
	}
	if moved, _ := filepath.Glob(fresh.cfg.Node.DataDir + ".removed-*"); len(moved) != 0 {
		t.Errorf("node 4 moved its data aside: %v", moved)
	}
	for _, d := range fresh.agent.Report().Decisions {
		if d.Action == report.ActionRemoveMember && strings.Contains(d.Reason, "not caught up") {
			t.Errorf("node 4 removed itself after its promotion: %s", d.Reason)
		}
	}
	w.verify(t, cli)
	lintest.HashKVEqual(t, cli, cli.Endpoints())
}

// promoteLearner promotes the learner with peer URL peer and stores its ID.
func promoteLearner(cli *clientv3.Client, peer string, id *atomic.Uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, peer) {
			id.Store(m.ID)
			_, err := cli.MemberPromote(ctx, m.ID)
			return err
		}
	}
	return errors.New("no member with peer URL " + peer)
}
