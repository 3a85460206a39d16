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

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/asgtest"
	"github.com/etcd-agent/etcd-agent/internal/imdssim"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// The Auto Scaling group the churn scenarios run in, and its hooks.
const (
	asgName          = "etcd-nodes"
	asgLaunchHook    = "etcd-launch"
	asgTerminateHook = "etcd-terminate"
)

// instanceID is node i's EC2 instance ID.
func instanceID(i int) string { return fmt.Sprintf("i-%017d", i) }

// asgGroup is a scenario's Auto Scaling group: the API stand-in (it
// checks every request the agents' SDK sends) and one IMDS simulator per
// node, which the group's notices replace.
type asgGroup struct {
	c    *cluster
	api  *asgtest.Server
	sims map[int]*imdssim.Sim
}

// newASG puts nodes 1..count in the group, each watching its own IMDS
// simulator (events mode: a scheduled maintenance event, no notice), with
// fleet.autoScaling.replacementWait as given. The founders (1..c.size:
// call after useV3Discovery) predate the launch hook; the nodes beyond
// them, replacements, have it.
func newASG(c *cluster, count int, replacementWait time.Duration) *asgGroup {
	c.t.Helper()
	var ids []string
	for i := 1; i <= count; i++ {
		ids = append(ids, instanceID(i))
	}
	g := &asgGroup{c: c, api: asgtest.Start(c.t, asgName, ids, asgLaunchHook, asgTerminateHook), sims: map[int]*imdssim.Sim{}}
	byIP := map[string]int{}
	for i := 1; i <= count; i++ {
		g.sims[i] = imdssim.Start(c.t, imdssim.Options{Mode: imdssim.Events, IP: c.ip(i), InstanceID: instanceID(i)})
		byIP[c.ip(i)] = i
	}
	c.configure = func(cfg *config.Config) {
		i := byIP[cfg.Node.IP]
		cfg.Fleet = config.Fleet{Notices: "imds", IMDSEndpoint: g.sims[i].Endpoint, Interval: config.Duration(time.Second),
			AutoScaling: config.AutoScaling{Group: asgName, TerminateHook: asgTerminateHook, Region: asgtest.Region, Endpoint: g.api.URL,
				HeartbeatInterval: config.Duration(time.Second), ReplacementWait: config.Duration(replacementWait)}}
		if i > c.size {
			cfg.Fleet.AutoScaling.LaunchHook = asgLaunchHook
		}
	}
	// The SDK's default chain finds the test credentials in the environment.
	c.env = []string{"AWS_ACCESS_KEY_ID=" + asgtest.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + asgtest.SecretAccessKey, "AWS_EC2_METADATA_DISABLED=true"}
	return g
}

// notice makes node i's IMDS answer in mode: asglifecycle (the group
// terminates the instance: target lifecycle state Terminated) or spot (an
// interruption notice).
func (g *asgGroup) notice(i int, mode imdssim.Mode) {
	g.c.t.Helper()
	old := g.sims[i]
	old.Stop()
	g.sims[i] = imdssim.Start(g.c.t, imdssim.Options{Mode: mode, IP: g.c.ip(i), Port: old.Port, InstanceID: instanceID(i)})
}

// checkCalls fails when the stand-in refused a request (malformed or
// badly signed).
func (g *asgGroup) checkCalls(t testing.TB) {
	t.Helper()
	if r := g.api.Rejected(); len(r) > 0 {
		t.Errorf("the API stand-in refused requests: %v", r)
	}
}

// replaceStep is one step of an instance refresh with MinHealthyPercentage
// 100 (the group launches before it terminates). Replacement repl boots
// with a new address while the cluster is full: it waits as a standby and
// completes its launch hook, which is what the group waits for (InService)
// before it terminates an old instance. Then old's IMDS says Terminated
// (its terminate hook holds the instance): old offers its seat, repl joins
// as a learner and is promoted, and only then does old's member leave (as
// `etcd-agent leave` does); its agent completes the terminate hook with
// CONTINUE and exits as left. The step ends there, so the next one starts
// once this replacement is a voter (the group's instance warmup covers
// the hand-over). With w, the writer's longest stall from Terminated to
// the exit goes to the timeline. It returns the replacement.
func (g *asgGroup) replaceStep(tl *timeline, w *lintest.Writer, old *node, repl int) *node {
	c, t := g.c, g.c.t
	t.Helper()
	nr := c.node(repl)
	nr.start()
	tl.mark("node %d boots with a new address (%s)", repl, c.ip(repl))
	deadline := time.Now().Add(time.Minute)
	for nr.report().Phase != report.PhaseStandby || g.api.Completed(asgLaunchHook, instanceID(repl)) != "CONTINUE" {
		if time.Now().After(deadline) {
			t.Fatalf("node %d is not a standby with its launch hook completed (phase %s, launch hook %q)\n%s",
				repl, nr.report().Phase, g.api.Completed(asgLaunchHook, instanceID(repl)), nr.describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, at := g.api.CompletedAt(asgLaunchHook, instanceID(repl))
	tl.markAt(at, "node %d completed launch hook %s with CONTINUE as a standby: %s", repl, asgLaunchHook, nr.report().Message)

	g.notice(old.i, imdssim.ASGLifecycle)
	terminatedAt := time.Now()
	tl.mark("node %d's IMDS: target lifecycle state Terminated", old.i)
	nr.waitReady(joinTimeout)
	tl.mark("node %d ready: a promoted, caught-up voter", repl)
	if code, err := old.proc.wait(2 * time.Minute); err != nil || code != exitConfig {
		t.Fatalf("node %d's agent after Terminated: exit %d, %v (want %d: left)\n%s", old.i, code, err, exitConfig, old.describe())
	}
	tl.mark("node %d's agent exited: left", old.i)
	for _, step := range []struct{ line, what string }{
		{"leave: handed leadership over", "node %d handed leadership over (its agent's log)"},
		{`step="removal committed"`, "node %d's member removed (its agent's log)"},
	} {
		if at, ok := logTime(old.proc.log, step.line); ok {
			tl.markAt(at, step.what, old.i)
		}
	}
	if w != nil {
		st := w.StallBetween(terminatedAt, time.Now())
		tl.mark("writer from Terminated to the exit: longest gap between acknowledged writes %s, slowest write %s (%d writes)",
			st.Gap.Round(time.Millisecond), st.Slowest.Round(time.Millisecond), st.Puts)
	}
	if got, at := g.api.CompletedAt(asgTerminateHook, instanceID(old.i)); got != "CONTINUE" {
		t.Errorf("node %d's terminate hook completed with %q, want CONTINUE; calls %+v", old.i, got, g.api.Calls())
	} else {
		tl.markAt(at, "node %d completed terminate hook %s with CONTINUE (%d heartbeats before)", old.i, asgTerminateHook,
			g.api.Count("RecordLifecycleActionHeartbeat", asgTerminateHook, instanceID(old.i)))
	}
	logb, _ := os.ReadFile(nr.proc.log)
	if !strings.Contains(string(logb), "take its seat before it leaves") {
		t.Errorf("node %d did not join on node %d's seat offer:\n%s", repl, old.i, nr.proc.tail(40))
	}
	return nr
}

// logTime is the time of the first line of an agent's log (slog text:
// time=... first) that contains substr.
func logTime(path, substr string) (time.Time, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, substr) {
			continue
		}
		ts, _, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); ok && err == nil {
			return at, true
		}
	}
	return time.Time{}, false
}

// without is idx without node i.
func without(idx []int, i int) []int {
	return slices.DeleteFunc(slices.Clone(idx), func(k int) bool { return k == i })
}

// timeline is a scenario's log of what happened when, in time order.
type timeline struct {
	t     testing.TB
	start time.Time

	mu     sync.Mutex
	events []timelineEvent
}

type timelineEvent struct {
	at   time.Time
	line string
}

func newTimeline(t testing.TB) *timeline { return &timeline{t: t, start: time.Now()} }

// mark records what happens now.
func (tl *timeline) mark(format string, args ...any) { tl.markAt(time.Now(), format, args...) }

// markAt records what happened at when (a time read afterwards, such as
// when the API stand-in answered).
func (tl *timeline) markAt(when time.Time, format string, args ...any) {
	line := fmt.Sprintf("t+%5.1fs %s", when.Sub(tl.start).Seconds(), fmt.Sprintf(format, args...))
	tl.mu.Lock()
	tl.events = append(tl.events, timelineEvent{when, line})
	tl.mu.Unlock()
	tl.t.Log(line)
}

// since is the offset of now, for sample descriptions.
func (tl *timeline) since() string { return fmt.Sprintf("t+%5.1fs", time.Since(tl.start).Seconds()) }

// log writes the whole timeline, sorted by time.
func (tl *timeline) log() {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	ev := slices.Clone(tl.events)
	slices.SortStableFunc(ev, func(a, b timelineEvent) int { return a.at.Compare(b.at) })
	var lines []string
	for _, e := range ev {
		lines = append(lines, e.line)
	}
	tl.t.Logf("timeline:\n%s", strings.Join(lines, "\n"))
}

// voterSampler samples, every 100 ms, the member list and a status answer
// from each voter in it, through a client of the nodes idx; each change of
// the member list goes to the timeline.
type voterSampler struct {
	stopSampling context.CancelFunc
	wg           sync.WaitGroup

	mu                             sync.Mutex
	want                           int
	samples, minHealthy, maxVoters int
	low                            []string
}

// sampleVoters samples until stop (or the end of the test); a sample with
// fewer than want healthy voters is recorded.
func (c *cluster) sampleVoters(tl *timeline, want int, idx ...int) *voterSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &voterSampler{stopSampling: cancel, want: want, minHealthy: 99}
	nodeOf := map[string]string{"": "a learner not started yet"}
	for _, i := range idx {
		nodeOf[c.name(i)] = fmt.Sprintf("node %d", i)
	}
	watch := c.client(idx...)
	s.wg.Go(func() {
		last := ""
		for ctx.Err() == nil {
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			ml, err := watch.MemberList(sctx)
			if err == nil {
				voters, healthy := 0, 0
				var vs, ls []string
				for _, m := range ml.Members {
					if m.IsLearner {
						ls = append(ls, nodeOf[m.Name])
						continue
					}
					if len(m.ClientURLs) == 0 {
						continue
					}
					vs = append(vs, nodeOf[m.Name])
					voters++
					// Each member its own deadline: a member just removed
					// can hang its Status until the deadline, and with one
					// deadline for the whole sample the members asked after
					// it failed on that (a CI run recorded "2 healthy of 4
					// voters" the moment node 1 was removed).
					mctx, mcancel := context.WithTimeout(ctx, time.Second)
					if _, err := watch.Status(mctx, m.ClientURLs[0]); err == nil {
						healthy++
					}
					mcancel()
				}
				if ctx.Err() != nil {
					// Stopped mid-sample: its Status calls failed on
					// the cancel, not on the members (a CI run recorded
					// "0 healthy of 3 voters" here).
					scancel()
					break
				}
				slices.Sort(vs)
				slices.Sort(ls)
				if now := fmt.Sprintf("voters %s; learners %v", strings.Join(vs, ", "), ls); now != last {
					tl.mark("members: %s", now)
					last = now
				}
				s.mu.Lock()
				s.samples++
				s.minHealthy, s.maxVoters = min(s.minHealthy, healthy), max(s.maxVoters, voters)
				if healthy < want {
					s.low = append(s.low, fmt.Sprintf("%s %d healthy of %d voters", tl.since(), healthy, voters))
				}
				s.mu.Unlock()
			}
			scancel()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	c.t.Cleanup(s.stop)
	return s
}

func (s *voterSampler) stop() { s.stopSampling(); s.wg.Wait() }

// check stops the sampler and fails when a sample had fewer than want
// healthy voters, or when the most voters seen is not maxVoters (a
// replacement promoted before its predecessor left: cluster.size + 1).
func (s *voterSampler) check(t testing.TB, maxVoters int) {
	t.Helper()
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("%d samples: at least %d healthy voters throughout, at most %d voters", s.samples, s.minHealthy, s.maxVoters)
	if len(s.low) > 0 {
		t.Errorf("fewer than %d healthy voters in %d of %d samples (make-before-break keeps %d):\n%s",
			s.want, len(s.low), s.samples, s.want, strings.Join(s.low[:min(len(s.low), 10)], "\n"))
	}
	if s.maxVoters != maxVoters {
		t.Errorf("at most %d voters seen, want %d: each replacement must be a voter before its predecessor leaves", s.maxVoters, maxVoters)
	}
}

// refreshRun is a refresh scenario under way: 3 voters in a group of
// more instances, a writer, and the voters sampled throughout.
type refreshRun struct {
	c   *cluster
	g   *asgGroup
	tl  *timeline
	n   []*node
	cli *clientv3.Client
	w   *lintest.Writer
	s   *voterSampler
}

// startRefresh forms nodes 1-3 in a group of count instances
// (replacementWait 2 min), starts the writer and samples the voters among
// nodes 1..count (never fewer than 3 healthy).
func startRefresh(t *testing.T, count int) *refreshRun {
	t.Helper()
	c := newCluster(t)
	c.useV3Discovery(3)
	r := &refreshRun{c: c, g: newASG(c, count, 2*time.Minute), tl: newTimeline(t)}
	r.n = c.form(3)
	r.cli = c.client(1, 2, 3)
	c.waitMembers(r.cli, time.Minute, 1, 2, 3)
	r.tl.mark("3 voters ready")
	r.w = lintest.Start(t, r.cli, 2)
	var all []int
	for i := 1; i <= count; i++ {
		all = append(all, i)
	}
	r.s = c.sampleVoters(r.tl, 3, all...)
	return r
}

// finish ends the scenario on the members idx: no request refused by the
// API stand-in, the usual proof, the voter samples (never fewer than 3
// healthy, 4 voters at most and at least once), the timeline.
func (r *refreshRun) finish(t *testing.T, idx ...int) {
	t.Helper()
	r.g.checkCalls(t)
	r.cli.SetEndpoints(r.c.endpoints(idx...)...)
	r.c.proof(r.w, r.cli, idx...)
	r.tl.mark("proof on nodes %v: every acknowledged write read back, linearizable, HashKV equal", idx)
	r.s.check(t, 4)
	r.tl.log()
}

// TestInstanceRefreshMakeBeforeBreak: one step of an instance refresh
// under a writer (replaceStep: node 4 replaces node 1). The healthy
// voters, sampled throughout, never drop below 3, and there were 4 voters
// before node 1 left. End: 3 voters (2, 3, 4), the usual proof.
func TestInstanceRefreshMakeBeforeBreak(t *testing.T) {
	t.Parallel()
	r := startRefresh(t, 4)
	r.g.replaceStep(r.tl, r.w, r.n[1], 4)
	r.finish(t, 2, 3, 4)
}

// TestInstanceRefresh: the whole instance refresh of a 3-node group under
// a writer, one instance at a time as the group does it with
// MinHealthyPercentage 100: nodes 4, 5 and 6 (new addresses) replace nodes
// 1, 2 and 3 in turn, each step a make-before-break replacement
// (replaceStep); the writer's client follows the members (as one following
// the DNS records would). End: 3 voters, all new, the usual proof, each
// hook completed once with CONTINUE, and never fewer than 3 healthy voters
// in the samples taken throughout.
func TestInstanceRefresh(t *testing.T) {
	t.Parallel()
	r := startRefresh(t, 6)
	members := []int{1, 2, 3}
	for old := 1; old <= 3; old++ {
		r.g.replaceStep(r.tl, r.w, r.n[old], old+3)
		members = append(without(members, old), old+3)
		r.cli.SetEndpoints(r.c.endpoints(members...)...)
	}
	r.tl.mark("refresh done: members are nodes %v", members)
	for i := 1; i <= 6; i++ {
		hook := asgTerminateHook
		if i > 3 {
			hook = asgLaunchHook
		}
		if got := r.g.api.Count("CompleteLifecycleAction", hook, instanceID(i)); got != 1 {
			t.Errorf("node %d completed its %s hook %d times, want once", i, hook, got)
		}
		if got := r.g.api.Completed(asgTerminateHook, instanceID(i)); i > 3 && got != "" {
			t.Errorf("node %d, not terminated, completed its terminate hook with %s", i, got)
		}
	}
	r.finish(t, 4, 5, 6)
}

// TestTwoTerminatedAtOnce: an instance refresh whose healthy-percentage
// range lets the group replace two instances at once (MaxHealthyPercentage
// 200 launches both replacements, then terminates two old instances at the
// same moment). Nodes 4 and 5 boot as standbys and complete their launch
// hooks; then nodes 1 and 2 are Terminated together. The first replacement
// to join is promoted (4 voters); the other is slow (its agent frozen from
// the moment the first is a learner: without that it may join before the
// second old member's leave, and the race below would be lost half the
// time). Both old members see "4 voters, all healthy", but only one may
// leave on that: the second must find, under the membership lock, that its
// removal would leave 2 voters, and offer its seat again. The slow
// replacement is thawed once the second old member either left or offers
// its seat again after the first left; it joins, is promoted, and only
// then does the second old member leave. The healthy voters, sampled
// throughout, never drop below 3. End: 3 voters (3, 4, 5), both terminate
// hooks completed once with CONTINUE, both replacements joined on a seat
// offer, the usual proof.
func TestTwoTerminatedAtOnce(t *testing.T) {
	t.Parallel()
	r := startRefresh(t, 5)
	c, g, tl := r.c, r.g, r.tl
	repl := map[int]*node{4: c.node(4), 5: c.node(5)}
	for _, i := range []int{4, 5} {
		repl[i].start()
		tl.mark("node %d boots with a new address (%s)", i, c.ip(i))
	}
	deadline := time.Now().Add(time.Minute)
	for _, i := range []int{4, 5} {
		for repl[i].report().Phase != report.PhaseStandby || g.api.Completed(asgLaunchHook, instanceID(i)) != "CONTINUE" {
			if time.Now().After(deadline) {
				t.Fatalf("node %d is not a standby with its launch hook completed (phase %s, launch hook %q)\n%s",
					i, repl[i].report().Phase, g.api.Completed(asgLaunchHook, instanceID(i)), repl[i].describe())
			}
			time.Sleep(200 * time.Millisecond)
		}
		_, at := g.api.CompletedAt(asgLaunchHook, instanceID(i))
		tl.markAt(at, "node %d completed launch hook %s with CONTINUE as a standby: %s", i, asgLaunchHook, repl[i].report().Message)
	}

	g.notice(1, imdssim.ASGLifecycle)
	g.notice(2, imdssim.ASGLifecycle)
	tl.mark("nodes 1 and 2's IMDS: target lifecycle state Terminated")

	// The first replacement to be added holds the other back.
	members := func() map[int]bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		in := map[int]bool{}
		if ml, err := r.cli.MemberList(ctx); err == nil {
			for _, m := range ml.Members {
				for i := 1; i <= 5; i++ {
					if strings.Contains(strings.Join(m.PeerURLs, ","), "//"+c.ip(i)+":") {
						in[i] = true
					}
				}
			}
		}
		return in
	}
	first, slow := 0, 0
	for deadline := time.Now().Add(time.Minute); first == 0; time.Sleep(50 * time.Millisecond) {
		in := members()
		switch {
		case in[4] && in[5]:
			t.Fatalf("nodes 4 and 5 both members before either was seen alone\n%s\n%s", repl[4].describe(), repl[5].describe())
		case in[4]:
			first, slow = 4, 5
		case in[5]:
			first, slow = 5, 4
		case time.Now().After(deadline):
			t.Fatalf("no replacement joined on the seat offers of nodes 1 and 2\n%s\n%s", repl[4].describe(), repl[5].describe())
		}
	}
	repl[slow].freeze()
	tl.mark("node %d added as a learner; node %d (the other replacement) frozen: slow to come", first, slow)
	if members()[slow] {
		repl[slow].thaw()
		t.Fatalf("node %d joined before it was frozen: one membership change at a time was not kept", slow)
	}

	// Wait for the first old member to leave, then until the other has
	// left too (the defect) or offers its seat again.
	var gone, other int
	for deadline := time.Now().Add(2 * time.Minute); gone == 0; time.Sleep(100 * time.Millisecond) {
		for _, old := range []int{1, 2} {
			if !r.n[old].proc.Running() {
				gone, other = old, 3-old
			}
		}
		if gone == 0 && time.Now().After(deadline) {
			t.Fatalf("neither node 1 nor node 2 left after node %d's promotion\n%s\n%s", first, r.n[1].describe(), r.n[2].describe())
		}
	}
	removedAt, _ := logTime(r.n[gone].proc.log, `step="removal committed"`)
	tl.mark("node %d's agent exited (member removed at t+%.1fs)", gone, removedAt.Sub(tl.start).Seconds())
	offering := func() (string, bool) {
		rep, cur := r.n[other].current()
		if !cur || !rep.UpdatedAt.After(removedAt) {
			return "", false
		}
		for _, p := range rep.Problems {
			if p.Code == "instance-leaving" && strings.Contains(p.Text, "seat offered") {
				return p.Text, true
			}
		}
		return "", false
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if !r.n[other].proc.Running() {
			tl.mark("node %d's agent exited too, with node %d still frozen", other, slow)
			break
		}
		if text, ok := offering(); ok {
			tl.mark("node %d offers its seat again: %s", other, text)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d neither left nor offers its seat after node %d left\n%s", other, gone, r.n[other].describe())
		}
	}
	repl[slow].thaw()
	tl.mark("node %d thawed", slow)

	r.cli.SetEndpoints(c.endpoints(3, 4, 5)...)
	for _, i := range []int{first, slow} {
		repl[i].waitReady(joinTimeout)
		tl.mark("node %d ready: a promoted, caught-up voter", i)
	}
	for _, old := range []int{1, 2} {
		n := r.n[old]
		if code, err := n.proc.wait(2 * time.Minute); err != nil || code != exitConfig {
			t.Fatalf("node %d's agent after Terminated: exit %d, %v (want %d: left)\n%s", old, code, err, exitConfig, n.describe())
		}
		if at, ok := logTime(n.proc.log, `step="removal committed"`); ok {
			tl.markAt(at, "node %d's member removed (its agent's log)", old)
		}
		if at, ok := logTime(n.proc.log, "leave on an EC2 notice deferred"); ok {
			tl.markAt(at, "node %d's leave deferred under the lock: offers its seat again (its agent's log)", old)
		}
		if got, at := g.api.CompletedAt(asgTerminateHook, instanceID(old)); got != "CONTINUE" {
			t.Errorf("node %d's terminate hook completed with %q, want CONTINUE; calls %+v", old, got, g.api.Calls())
		} else {
			tl.markAt(at, "node %d completed terminate hook %s with CONTINUE (%d heartbeats before)", old, asgTerminateHook,
				g.api.Count("RecordLifecycleActionHeartbeat", asgTerminateHook, instanceID(old)))
		}
		if got := g.api.Count("CompleteLifecycleAction", asgTerminateHook, instanceID(old)); got != 1 {
			t.Errorf("node %d completed its terminate hook %d times, want once", old, got)
		}
	}
	for _, i := range []int{4, 5} {
		logb, _ := os.ReadFile(repl[i].proc.log)
		if !strings.Contains(string(logb), "take its seat before it leaves") {
			t.Errorf("node %d did not join on a seat offer:\n%s", i, repl[i].proc.tail(40))
		}
	}
	r.finish(t, 3, 4, 5)
}
