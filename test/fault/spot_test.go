package fault_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/internal/imdssim"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestSpotNoticeOnLeader: three nodes under a writer, each watching its
// own IMDS simulator (events mode: a scheduled maintenance event, shown in
// status; no lifecycle state, so the terminate hook they name is reported
// missing). The leader's simulator is replaced by one in spot mode: its
// agent hands leadership over, takes the snapshot, removes its member and
// exits as left; the remaining members never report a leader that is not
// a member (no election after the removal). A replacement node then joins
// as a learner, is promoted, and completes its Auto Scaling launch hook
// (on the SigV4-checking stand-in for the API) once ready; proof. Then the
// group scales in: an old node's simulator says Terminated, its member
// leaves (the quorum allows it) and its agent completes the terminate
// hook with CONTINUE; proof on the two left.
func TestSpotNoticeOnLeader(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useV3Discovery(3)
	// A scale-in follows: no replacement comes; offer the seat briefly.
	g := newASG(c, 4, 5*time.Second)
	api := g.api
	tl := newTimeline(t)
	mark := tl.mark

	n := c.form(3)
	cli := c.client(1, 2, 3)
	members := c.waitMembers(cli, time.Minute, 1, 2, 3)
	mark("3 voters ready")
	waitProblem(t, n[2], problem.MaintenanceScheduled.Code)
	waitProblem(t, n[2], problem.LifecycleStateMissing.Code)
	mark("node 2's status shows the scheduled maintenance event, and that IMDS has no lifecycle state for its terminate hook")
	w := lintest.Start(t, cli, 2)

	leader, leaderID := 0, uint64(0)
	for i := 1; i <= 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, c.clientURL(i))
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			leader, leaderID = i, st.Leader
		}
	}
	if leader == 0 {
		t.Fatalf("no leader among nodes 1-3\n%s", c.describe(1, 2, 3))
	}
	var rest []int
	for i := 1; i <= 3; i++ {
		if i != leader {
			rest = append(rest, i)
		}
	}
	mark("node %d leads (member %x)", leader, leaderID)

	// Sample the remaining members' view of the leader against the member
	// list throughout: once the old leader is removed, a leader that is not
	// a member (or none) is an election the hand-over should have spared.
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampleWG sync.WaitGroup
	var smu sync.Mutex
	var leaderless []string
	samples := 0
	restCli := c.client(rest...)
	sampleWG.Go(func() {
		for sampleCtx.Err() == nil {
			ctx, cancel := context.WithTimeout(sampleCtx, 2*time.Second)
			ml, err := restCli.MemberList(ctx)
			var ids []uint64
			if err == nil {
				for _, m := range ml.Members {
					ids = append(ids, m.ID)
				}
				for _, i := range rest {
					st, err := restCli.Status(ctx, c.clientURL(i))
					if err != nil {
						continue
					}
					smu.Lock()
					samples++
					// Only once the old leader is removed: a leadership
					// transfer itself shows "no leader" for a moment.
					if !slices.Contains(ids, leaderID) && (st.Leader == 0 || !slices.Contains(ids, st.Leader)) {
						leaderless = append(leaderless, fmt.Sprintf("%s node %d: leader %x, members %x", tl.since(), i, st.Leader, ids))
					}
					smu.Unlock()
				}
			}
			cancel()
			select {
			case <-sampleCtx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() { stopSampling(); sampleWG.Wait() })

	// The spot notice: the leader's IMDS now answers spot/instance-action.
	g.notice(leader, imdssim.Spot)
	noticeAt := time.Now()
	mark("spot interruption notice on node %d's IMDS", leader)
	if code, err := n[leader].proc.wait(2 * time.Minute); err != nil || code != exitConfig {
		t.Fatalf("node %d's agent after the spot notice: exit %d, %v (want %d: left)\n%s", leader, code, err, exitConfig, n[leader].describe())
	}
	mark("node %d's agent exited: left", leader)
	st0 := w.StallBetween(noticeAt, time.Now())
	mark("writer from the notice to the exit: longest gap between acknowledged writes %s, slowest write %s (%d writes)",
		st0.Gap.Round(time.Millisecond), st0.Slowest.Round(time.Millisecond), st0.Puts)
	cli.SetEndpoints(c.endpoints(rest...)...)
	c.waitMembers(cli, time.Minute, rest...)
	mark("members are nodes %v", rest)
	logb, _ := os.ReadFile(n[leader].proc.log)
	for _, step := range []string{"leaving the cluster on an EC2 notice", "handing leadership over", "removal committed"} {
		if !strings.Contains(string(logb), step) {
			t.Errorf("node %d's log does not show %q:\n%s", leader, step, n[leader].proc.tail(40))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	st, err := cli.Status(ctx, c.clientURL(rest[0]))
	cancel()
	if err != nil || st.Leader == leaderID || st.Leader == 0 {
		t.Errorf("after the leave: leader %x (%v), want another member than %x", st.Leader, err, leaderID)
	} else {
		mark("leader is now %x", st.Leader)
	}

	// A replacement with a new address joins, is promoted and completes
	// its launch hook once ready.
	n4 := c.node(4)
	n4.start()
	n4.waitReady(joinTimeout)
	mark("replacement node 4 ready (voter)")
	deadline := time.Now().Add(time.Minute)
	for api.Completed(asgLaunchHook, instanceID(4)) != "CONTINUE" {
		if time.Now().After(deadline) {
			t.Fatalf("node 4's launch hook not completed with CONTINUE; API calls %+v, refused %v\n%s", api.Calls(), api.Rejected(), n4.describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
	mark("node 4 completed launch hook %s with CONTINUE (%d heartbeats before)", asgLaunchHook, api.Count("RecordLifecycleActionHeartbeat", asgLaunchHook, instanceID(4)))
	g.checkCalls(t)
	stopSampling()
	sampleWG.Wait()

	after := c.proof(w, cli, append(rest, 4)...)
	mark("proof: every acknowledged write read back, linearizable, HashKV equal on nodes %v", append(rest, 4))
	for _, i := range rest {
		if after[c.name(i)].ID != members[c.name(i)].ID {
			t.Errorf("node %d's member changed: %x, was %x", i, after[c.name(i)].ID, members[c.name(i)].ID)
		}
	}
	smu.Lock()
	t.Logf("%d leader samples on the remaining members", samples)
	if len(leaderless) > 0 {
		t.Errorf("the remaining members reported a leader that is not a member (an election after the leader's removal) in %d of %d samples:\n%s",
			len(leaderless), samples, strings.Join(leaderless[:min(len(leaderless), 10)], "\n"))
	}
	smu.Unlock()

	// Scale-in: the group terminates node rest[0] (its terminate hook
	// pending); 3 healthy voters, so its member may leave.
	gone, stay := rest[0], []int{rest[1], 4}
	w2 := lintest.Start(t, c.client(stay...), 2)
	g.notice(gone, imdssim.ASGLifecycle)
	terminatedAt := time.Now()
	mark("node %d's IMDS: target lifecycle state Terminated", gone)
	if code, err := n[gone].proc.wait(2 * time.Minute); err != nil || code != exitConfig {
		t.Fatalf("node %d's agent after Terminated: exit %d, %v (want %d: left)\n%s", gone, code, err, exitConfig, n[gone].describe())
	}
	mark("node %d's agent exited: left", gone)
	st1 := w2.StallBetween(terminatedAt, time.Now())
	mark("writer from Terminated to the exit: longest gap between acknowledged writes %s, slowest write %s (%d writes)",
		st1.Gap.Round(time.Millisecond), st1.Slowest.Round(time.Millisecond), st1.Puts)
	if got := api.Completed(asgTerminateHook, instanceID(gone)); got != "CONTINUE" {
		t.Errorf("node %d's terminate hook completed with %q, want CONTINUE; calls %+v", gone, got, api.Calls())
	} else {
		mark("node %d completed terminate hook %s with CONTINUE (%d heartbeats before)", gone, asgTerminateHook, api.Count("RecordLifecycleActionHeartbeat", asgTerminateHook, instanceID(gone)))
	}
	for _, i := range stay {
		if got := api.Completed(asgTerminateHook, instanceID(i)); got != "" {
			t.Errorf("node %d, not terminated, completed its terminate hook with %s", i, got)
		}
	}
	g.checkCalls(t)
	// No replacement came: `status` on each node left says the cluster is
	// below its size (exit 3), whatever else it finds.
	for _, i := range stay {
		code, view, table := c.status(i)
		var found string
		for _, p := range view.Summary.Problems {
			if p.Code == problem.UnderReplicated.Code {
				found = p.Text
			}
		}
		if code != 3 || !strings.Contains(found, "2 of 3 voters") || !strings.Contains(table, "under-replicated: 2 of 3 voters") {
			t.Errorf("status on node %d after the scale-in: exit %d, under-replicated problem %q (want exit 3 and \"2 of 3 voters\"):\n%s", i, code, found, table)
		} else {
			mark("status on node %d: exit 3, %s", i, found)
		}
	}
	cli2 := c.client(stay...)
	c.proof(w2, cli2, stay...)
	mark("proof after the scale-in on nodes %v", stay)
	tl.log()
}

// waitProblem waits until the node's report lists a problem with code.
func waitProblem(t *testing.T, nd *node, code problem.Code) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, p := range nd.report().Problems {
			if p.Code == code {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d's report has no %s problem:\n%s", nd.i, code, nd.describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
