package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/internal/asgtest"
	"github.com/etcd-agent/etcd-agent/internal/imdssim"
)

var errDeparted = errors.New("node left")

// fakeNode is the agent as the job sees it: a cluster of members, the
// leave marker, READY, and the problems it publishes.
type fakeNode struct {
	mu       sync.Mutex
	members  []membership.ClusterMember
	self     uint64
	surveyOK bool
	ready    bool
	left     bool
	leaves   int
	problems []problem.Problem
	// onLeave runs during Leave (a check that the hook is heartbeated).
	onLeave func()
	// underLock is the member list Leave's survey under the lock finds
	// (nil: members): another member's leave got in between.
	underLock []membership.ClusterMember
	// guards counts the leaves asked with a guard.
	guards int
}

func (n *fakeNode) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
func (n *fakeNode) Now() time.Time       { return time.Now() }
func (n *fakeNode) Survey(context.Context) (uint64, []membership.ClusterMember, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.surveyOK {
		return 0, nil, errors.New("no member answers")
	}
	return n.self, n.members, nil
}
func (n *fakeNode) Ready() bool   { n.mu.Lock(); defer n.mu.Unlock(); return n.ready }
func (n *fakeNode) Standby() bool { return false }
func (n *fakeNode) LeaveState() (bool, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.left, false
}
func (n *fakeNode) Leave(ctx context.Context, guard membership.LeaveGuard, progress func(string)) error {
	if n.onLeave != nil {
		n.onLeave()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ms := n.members
	if n.underLock != nil {
		ms = n.underLock
	}
	if err := membership.LeaveCheck(n.self, ms); err != nil {
		return err
	}
	if guard != nil {
		n.guards++
		if err := guard(n.self, ms); err != nil {
			return &membership.DeferredError{Err: err}
		}
	}
	n.leaves++
	n.left = true
	return nil
}
func (n *fakeNode) Departed() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.left {
		return errDeparted
	}
	return nil
}
func (n *fakeNode) Cluster() (*clientv3.Client, error) {
	return nil, errors.New("no cluster client in this test")
}
func (n *fakeNode) SetProblems(ps []problem.Problem) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.problems = ps
}

// problem returns the published problem with code (ok false if none).
func (n *fakeNode) problem(code problem.Code) (problem.Problem, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.problems {
		if p.Code == code {
			return p, true
		}
	}
	return problem.Problem{}, false
}

func healthy3() []membership.ClusterMember {
	return []membership.ClusterMember{voter(1, true), voter(2, true), voter(3, true)}
}

// reader reads the simulator at endpoint the way the agent does.
func reader(t *testing.T, endpoint string) *identity.Reader {
	r := identity.IMDS{Endpoint: endpoint, MaxAttempts: 2, AttemptTimeout: 2 * time.Second}.NewReader()
	t.Cleanup(r.Close)
	return r
}

func hooksTo(endpoint string) func(context.Context, string) (Hooks, error) {
	return func(_ context.Context, id string) (Hooks, error) {
		return testASG(endpoint, asgtest.SecretAccessKey, id), nil
	}
}

// rounds runs the job until it ends the pass or n rounds passed.
func rounds(t *testing.T, j *Job, n int) error {
	t.Helper()
	for range n {
		if err := j.Run(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

func TestObserveSimulatorModes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		mode          imdssim.Mode
		notice        NoticeKind
		lifecycle     bool
		scheduled     bool
		spotAction    string
		wantRebalance bool
	}{
		{mode: imdssim.ASGLifecycle, notice: NoticeTerminate, lifecycle: true},
		{mode: imdssim.Spot, notice: NoticeSpot, spotAction: "terminate", wantRebalance: true},
		{mode: imdssim.Events, notice: NoticeNone, scheduled: true},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			sim := imdssim.Start(t, imdssim.Options{Mode: tc.mode})
			o := Observe(ctx, reader(t, sim.Endpoint))
			if len(o.Errors) > 0 {
				t.Fatalf("errors: %v", o.Errors)
			}
			if got := NoticeOf(o).Kind; got != tc.notice {
				t.Errorf("notice %q, want %q (%+v)", got, tc.notice, o)
			}
			if o.HasLifecycleState != tc.lifecycle {
				t.Errorf("lifecycle state present = %v, want %v", o.HasLifecycleState, tc.lifecycle)
			}
			if (len(o.Scheduled) > 0) != tc.scheduled {
				t.Errorf("scheduled events %+v, want some: %v", o.Scheduled, tc.scheduled)
			}
			if tc.scheduled && (o.Scheduled[0].Code != "system-reboot" || o.Scheduled[0].NotBefore == "") {
				t.Errorf("scheduled event %+v", o.Scheduled[0])
			}
			if tc.spotAction != "" && (o.Spot == nil || o.Spot.Action != tc.spotAction || o.Spot.Time == "") {
				t.Errorf("spot action %+v, want %s with a time", o.Spot, tc.spotAction)
			}
			if (o.Rebalance != "") != tc.wantRebalance {
				t.Errorf("rebalance %q, want one: %v", o.Rebalance, tc.wantRebalance)
			}
		})
	}
	t.Run("InService until the group terminates the instance", func(t *testing.T) {
		t.Parallel()
		sim := imdssim.Start(t, imdssim.Options{Mode: imdssim.ASGLifecycle, TerminateAfter: 3 * time.Second})
		r := reader(t, sim.Endpoint)
		if o := Observe(ctx, r); o.LifecycleState != "InService" || NoticeOf(o).Kind != NoticeNone {
			t.Fatalf("before the delay: %+v", o)
		}
		waitNotice(t, r, NoticeTerminate)
	})
}

// waitNotice reads until the notice shows (the simulator's delay).
func waitNotice(t *testing.T, r MetadataReader, want NoticeKind) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for NoticeOf(Observe(context.Background(), r)).Kind != want {
		if time.Now().After(deadline) {
			t.Fatalf("no %s notice within 30s", want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestTerminateHook: the group terminates the instance (target lifecycle
// state Terminated): the member leaves, the hook is heartbeated while it
// does, then completed with CONTINUE, and the job ends the pass.
func TestTerminateHook(t *testing.T) {
	t.Parallel()
	sim := imdssim.Start(t, imdssim.Options{Mode: imdssim.ASGLifecycle, InstanceID: testInstance, TerminateAfter: 2 * time.Second})
	api := asgtest.Start(t, testGroup, []string{testInstance}, testLaunch, testTerminate)
	n := &fakeNode{members: healthy3(), self: 1, surveyOK: true, ready: true}
	var beatsDuringLeave int
	n.onLeave = func() {
		// Leave takes a while: the heartbeat goroutine must beat meanwhile.
		deadline := time.Now().Add(10 * time.Second)
		for api.Count("RecordLifecycleActionHeartbeat", testTerminate, testInstance) < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		beatsDuringLeave = api.Count("RecordLifecycleActionHeartbeat", testTerminate, testInstance)
	}
	j := NewJob(n, reader(t, sim.Endpoint), Settings{LaunchHook: testLaunch, TerminateHook: testTerminate, HeartbeatEvery: 100 * time.Millisecond, NewHooks: hooksTo(api.URL)})

	if err := j.Run(context.Background()); err != nil {
		t.Fatalf("round before the notice: %v", err)
	}
	if got := api.Completed(testLaunch, testInstance); got != "CONTINUE" {
		t.Fatalf("launch hook completed with %q, want CONTINUE (member ready)", got)
	}
	if n.leaves != 0 || api.Count("RecordLifecycleActionHeartbeat", testTerminate, testInstance) != 0 {
		t.Fatalf("InService: left %d times, terminate hook heartbeats %d", n.leaves, api.Count("RecordLifecycleActionHeartbeat", testTerminate, testInstance))
	}
	waitNotice(t, j.imd, NoticeTerminate)
	if err := rounds(t, j, 3); !errors.Is(err, errDeparted) {
		t.Fatalf("rounds after Terminated: %v, want the pass ended as departed", err)
	}
	if n.leaves != 1 {
		t.Errorf("left %d times, want once", n.leaves)
	}
	if beatsDuringLeave < 2 {
		t.Errorf("terminate hook heartbeated %d times during the leave, want >= 2", beatsDuringLeave)
	}
	if got := api.Completed(testTerminate, testInstance); got != "CONTINUE" {
		t.Errorf("terminate hook completed with %q, want CONTINUE; calls %+v", got, api.Calls())
	}
	if r := api.Rejected(); len(r) > 0 {
		t.Errorf("requests refused: %v", r)
	}
}

// TestTwoTerminatedAtOnceDefers: the group terminates two members of a
// 3-voter cluster at once and one replacement is promoted (4 voters): this
// round's survey says "leave", but under the lock the other terminated
// member is gone already (3 voters). The leave is deferred, not failed:
// the member offers its seat again, status says why, the terminate hook
// is heartbeated and not completed. The replacement window had run out
// before: the deferral opens a new one, so the next round (3 voters, no
// learner yet) still waits instead of leaving on the quorum rule. Once a
// second replacement is promoted, it leaves and completes the hook.
func TestTwoTerminatedAtOnceDefers(t *testing.T) {
	t.Parallel()
	sim := imdssim.Start(t, imdssim.Options{Mode: imdssim.ASGLifecycle, InstanceID: testInstance})
	api := asgtest.Start(t, testGroup, []string{testInstance}, testLaunch, testTerminate)
	four := []membership.ClusterMember{voter(1, true), voter(2, true), voter(3, true), voter(4, true)}
	three := []membership.ClusterMember{voter(1, true), voter(3, true), voter(4, true)}
	n := &fakeNode{members: four, self: 1, surveyOK: true, ready: true, underLock: three}
	j := NewJob(n, reader(t, sim.Endpoint), Settings{TerminateHook: testTerminate, HeartbeatEvery: time.Millisecond,
		NewHooks: hooksTo(api.URL), DesiredSize: 3, ReplacementWait: time.Minute})
	waitNotice(t, j.imd, NoticeTerminate)
	j.terminatedSince = time.Now().Add(-2 * time.Minute) // the window ran out
	if err := rounds(t, j, 1); err != nil {
		t.Fatalf("round with the other member gone under the lock: %v, want the pass to go on", err)
	}
	if n.leaves != 0 || n.guards != 1 {
		t.Fatalf("left %d times, %d guarded leave attempts; want no leave, 1 attempt refused by the guard", n.leaves, n.guards)
	}
	p, ok := n.problem(problem.InstanceLeaving.Code)
	if !ok || !strings.Contains(p.Text, "leave deferred") || !strings.Contains(p.Text, "would leave 2 voters, fewer than cluster.size 3") ||
		!strings.Contains(p.Text, "seat offered again") {
		t.Fatalf("problem %+v (found %v), want instance-leaving saying the leave was deferred and the seat offered again", p, ok)
	}
	if p, ok := n.problem(problem.InstanceStays.Code); ok {
		t.Errorf("a deferred leave is a wait, not a failure: %+v", p)
	}
	t.Logf("status: %s", p)

	// The other member's removal is seen now: 3 voters, no learner yet.
	n.mu.Lock()
	n.members, n.underLock = three, nil
	n.mu.Unlock()
	if err := rounds(t, j, 2); err != nil || n.leaves != 0 {
		t.Fatalf("3 voters after the deferral: %v, left %d times; want a wait for the next replacement (a new window)", err, n.leaves)
	}
	if p, ok := n.problem(problem.InstanceLeaving.Code); !ok || !strings.Contains(p.Text, "seat offered to a replacement") {
		t.Errorf("problem %+v (found %v), want the seat offered", p, ok)
	}
	if got := api.Completed(testTerminate, testInstance); got != "" {
		t.Fatalf("terminate hook completed with %s while the member is still a voter", got)
	}
	if api.Count("RecordLifecycleActionHeartbeat", testTerminate, testInstance) == 0 {
		t.Error("terminate hook not heartbeated while the member waits")
	}

	// A second replacement (5) is promoted: 4 voters again.
	n.mu.Lock()
	n.members = []membership.ClusterMember{voter(1, true), voter(3, true), voter(4, true), voter(5, true)}
	n.mu.Unlock()
	if err := rounds(t, j, 1); !errors.Is(err, errDeparted) || n.leaves != 1 {
		t.Fatalf("second replacement promoted: %v, left %d times; want one leave", err, n.leaves)
	}
	if got := api.Completed(testTerminate, testInstance); got != "CONTINUE" {
		t.Errorf("terminate hook completed with %q, want CONTINUE", got)
	}
	if r := api.Rejected(); len(r) > 0 {
		t.Errorf("requests refused: %v", r)
	}
}

// TestSpotNoticeKeepsQuorum: a spot notice on a member of a 3-voter
// cluster whose third voter is down: leaving would leave one healthy voter
// of two, so the member stays and status says why; once the third is back
// it leaves.
func TestSpotNoticeKeepsQuorum(t *testing.T) {
	t.Parallel()
	sim := imdssim.Start(t, imdssim.Options{Mode: imdssim.Spot})
	n := &fakeNode{members: []membership.ClusterMember{voter(1, true), voter(2, true), voter(3, false)}, self: 1, surveyOK: true, ready: true}
	j := NewJob(n, reader(t, sim.Endpoint), Settings{})
	if err := rounds(t, j, 2); err != nil {
		t.Fatalf("rounds: %v", err)
	}
	if n.leaves != 0 {
		t.Fatal("left although quorum was at stake")
	}
	p, ok := n.problem(problem.InstanceStays.Code)
	if !ok || !strings.Contains(p.Text, "spot interruption") || !strings.Contains(p.Text, "would leave 1 healthy of 2 voters") {
		t.Fatalf("problem %+v (found %v), want instance-leave-held naming the spot notice and the quorum", p, ok)
	}
	t.Logf("status: %s", p)
	n.mu.Lock()
	n.members[2].Healthy = true
	n.mu.Unlock()
	if err := rounds(t, j, 1); !errors.Is(err, errDeparted) || n.leaves != 1 {
		t.Fatalf("third voter back: %v, left %d times; want one leave", err, n.leaves)
	}
}

// TestBadInputStillLeaves: whatever goes wrong with the hooks (API
// unreachable, access denied, a hook name the group does not have, IMDS
// without the lifecycle path), status names the problem and its fix, and
// the member still leaves on the spot notice.
func TestBadInputStillLeaves(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		api       func(t *testing.T) string // the API endpoint
		terminate string
		code      problem.Code
		fix       string
	}{
		{"API unreachable", func(t *testing.T) string { return closedURL(t) }, testTerminate, problem.LifecycleHookFailed.Code, "cannot reach the Auto Scaling API"},
		{"access denied", func(t *testing.T) string {
			s := asgtest.Start(t, testGroup, []string{testInstance}, testLaunch, testTerminate)
			s.Deny(true)
			return s.URL
		}, testTerminate, problem.LifecycleHookFailed.Code, "give the instance role"},
		{"unknown launch hook", func(t *testing.T) string {
			return asgtest.Start(t, testGroup, []string{testInstance}, "another-hook", testTerminate).URL
		}, testTerminate, problem.LifecycleHookFailed.Code, "describe-lifecycle-hooks"},
		{"IMDS without the lifecycle path", func(t *testing.T) string {
			return asgtest.Start(t, testGroup, []string{testInstance}, testLaunch, testTerminate).URL
		}, testTerminate, problem.LifecycleStateMissing.Code, "not in an Auto Scaling group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Spot mode: a spot notice, and no autoscaling/target-lifecycle-state.
			sim := imdssim.Start(t, imdssim.Options{Mode: imdssim.Spot, InstanceID: testInstance, NoticeAfter: 2 * time.Second})
			n := &fakeNode{members: healthy3(), self: 1, surveyOK: true}
			j := NewJob(n, reader(t, sim.Endpoint), Settings{LaunchHook: testLaunch, TerminateHook: tc.terminate, HeartbeatEvery: time.Millisecond, NewHooks: hooksTo(tc.api(t))})
			if err := rounds(t, j, 1); err != nil {
				t.Fatal(err)
			}
			p, ok := n.problem(tc.code)
			if !ok || !strings.Contains(p.Fix, tc.fix) {
				n.mu.Lock()
				t.Fatalf("problems %+v; want %s with a fix mentioning %q", n.problems, tc.code, tc.fix)
			}
			t.Logf("status: %s", p)
			waitNotice(t, j.imd, NoticeSpot)
			if err := rounds(t, j, 3); !errors.Is(err, errDeparted) || n.leaves != 1 {
				t.Fatalf("after the spot notice: %v, left %d times; want one leave", err, n.leaves)
			}
		})
	}
}

// TestLaunchHookWaitsForReady: the launch hook is heartbeated until the
// member is ready, then completed with CONTINUE once.
func TestLaunchHookWaitsForReady(t *testing.T) {
	t.Parallel()
	sim := imdssim.Start(t, imdssim.Options{Mode: imdssim.Events, InstanceID: testInstance})
	api := asgtest.Start(t, testGroup, []string{testInstance}, testLaunch)
	n := &fakeNode{members: healthy3(), self: 1, surveyOK: true}
	j := NewJob(n, reader(t, sim.Endpoint), Settings{LaunchHook: testLaunch, HeartbeatEvery: time.Millisecond, NewHooks: hooksTo(api.URL)})
	if err := rounds(t, j, 3); err != nil {
		t.Fatal(err)
	}
	if beats := api.Count("RecordLifecycleActionHeartbeat", testLaunch, testInstance); beats < 2 || api.Completed(testLaunch, testInstance) != "" {
		t.Fatalf("not ready: %d heartbeats, completed %q; want heartbeats only", beats, api.Completed(testLaunch, testInstance))
	}
	if _, ok := n.problem(problem.LifecycleHookWaiting.Code); !ok {
		t.Error("status does not say the launch hook waits")
	}
	p, ok := n.problem(problem.MaintenanceScheduled.Code)
	if !ok || !strings.Contains(p.Text, "system-reboot") {
		t.Errorf("scheduled maintenance not shown: %+v", p)
	}
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	if err := rounds(t, j, 3); err != nil {
		t.Fatal(err)
	}
	completes := 0
	for _, c := range api.Calls() {
		if c.Action == "CompleteLifecycleAction" {
			completes++
		}
	}
	if api.Completed(testLaunch, testInstance) != "CONTINUE" || completes != 1 {
		t.Fatalf("ready: completed %q in %d calls, want CONTINUE once", api.Completed(testLaunch, testInstance), completes)
	}
	if _, ok := n.problem(problem.LifecycleHookWaiting.Code); ok {
		t.Error("status still says the launch hook waits")
	}
}

// TestAbandonLaunchHook: a configuration error completes the launch hook
// with ABANDON.
func TestAbandonLaunchHook(t *testing.T) {
	t.Parallel()
	sim := imdssim.Start(t, imdssim.Options{Mode: imdssim.Events, InstanceID: testInstance})
	api := asgtest.Start(t, testGroup, []string{testInstance}, testLaunch)
	if err := Abandon(context.Background(), reader(t, sim.Endpoint), testLaunch, hooksTo(api.URL)); err != nil {
		t.Fatal(err)
	}
	if got := api.Completed(testLaunch, testInstance); got != "ABANDON" {
		t.Fatalf("completed with %q, want ABANDON", got)
	}
}

// TestIMDSUnreachableNeverEnds: IMDS does not answer: each round reports
// it, backs off (capped), and never ends the pass.
func TestIMDSUnreachableNeverEnds(t *testing.T) {
	t.Parallel()
	n := &fakeNode{members: healthy3(), self: 1, surveyOK: true}
	j := NewJob(n, reader(t, closedURL(t)), Settings{})
	if err := rounds(t, j, 3); err != nil {
		t.Fatalf("IMDS unreachable ended the pass: %v", err)
	}
	p, ok := n.problem(problem.NoticesUnreadable.Code)
	if !ok || !strings.Contains(p.Text, "did not answer") {
		t.Fatalf("problem %+v (found %v), want imds-notices-unreadable", p, ok)
	}
	j.mu.Lock()
	wait := time.Until(j.skipUntil)
	j.mu.Unlock()
	if wait <= 0 || wait > maxRoundBackoff {
		t.Errorf("next read in %s, want a backoff within (0, %s]", wait, maxRoundBackoff)
	}
	fmt.Fprint(testWriter{t}, p.String())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
