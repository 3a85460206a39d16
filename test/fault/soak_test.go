package fault_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/asgtest"
	"github.com/etcd-agent/etcd-agent/internal/imdssim"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// soakKind is one kind of thing the world does to a node.
type soakKind string

// The soak's events, in the order of the table it prints.
const (
	// soakReboot: the node's Zincati asks pre-reboot until granted, the
	// node reboots (agent and etcd killed and started in place), Zincati
	// asks steady-state until granted.
	soakReboot soakKind = "os-reboot"
	// soakRefresh: one instance-refresh step: a replacement with a new
	// address boots (a standby), then the group terminates the node.
	soakRefresh soakKind = "instance-refresh"
	// soakSpot: a spot interruption notice; once the node has left (and
	// been interrupted), the group launches a replacement.
	soakSpot soakKind = "spot-interruption"
	// soakRebalance: a rebalance recommendation; capacity rebalancing
	// launches the replacement at once, while the node leaves.
	soakRebalance soakKind = "rebalance"
	// soakCrash: the agent is killed (-9) and systemd starts it again;
	// with embedded etcd its etcd dies with it, on Podman the container
	// runs on and the new agent adopts it.
	soakCrash soakKind = "agent-crash"
	// soakEtcdCrash (Podman only): the etcd container is killed; the
	// agent starts it again.
	soakEtcdCrash soakKind = "etcd-crash"
)

// soakKinds are the events of a run with embedded etcd; a Podman run adds
// soakEtcdCrash.
var soakKinds = []soakKind{soakReboot, soakRefresh, soakSpot, soakRebalance, soakCrash}

// soakShortEvents is the default run's length (CI); `make soak` sets
// SOAK_EVENTS.
const soakShortEvents = 6

// soakPlan is the seeded sequence of events: every kind at least once when
// there are as many events as kinds, the rest drawn at random, shuffled.
func soakPlan(seed uint64, events int, kinds []soakKind) []soakKind {
	rng := rand.New(rand.NewPCG(seed, 0))
	var plan []soakKind
	if events >= len(kinds) {
		plan = slices.Clone(kinds)
	}
	for len(plan) < events {
		plan = append(plan, kinds[rng.IntN(len(kinds))])
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	return plan
}

// TestSoakPlan: the plan is reproducible from its seed, holds every kind
// once there are enough events, and differs between seeds.
func TestSoakPlan(t *testing.T) {
	podman := append(slices.Clone(soakKinds), soakEtcdCrash)
	for _, kinds := range [][]soakKind{soakKinds, podman} {
		for _, events := range []int{soakShortEvents, 24} {
			a, b := soakPlan(42, events, kinds), soakPlan(42, events, kinds)
			if !slices.Equal(a, b) {
				t.Errorf("%d events, seed 42 twice: %v and %v", events, a, b)
			}
			if len(a) != events {
				t.Errorf("%d events planned, want %d", len(a), events)
			}
			for _, k := range kinds {
				if !slices.Contains(a, k) {
					t.Errorf("%d events, seed 42: no %s in %v", events, k, a)
				}
			}
		}
	}
	seen := map[string]bool{}
	for seed := range uint64(20) {
		seen[fmt.Sprint(soakPlan(seed, soakShortEvents, soakKinds))] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 seeds gave only %d different plans", len(seen))
	}
	if got := soakPlan(1, 2, soakKinds); len(got) != 2 {
		t.Errorf("2 events: %v", got)
	}
}

// soakEnv reads SOAK_SEED (default: the clock), SOAK_EVENTS (default: the
// short run) and SOAK_RUNTIME (embedded, the default, or podman).
func soakEnv(t *testing.T) (seed uint64, events int, podman bool) {
	t.Helper()
	seed = uint64(time.Now().UnixNano())
	if s := os.Getenv("SOAK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: want a non-negative integer (the seed a failed run logged): %v", s, err)
		}
		seed = v
	}
	events = soakShortEvents
	if s := os.Getenv("SOAK_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("SOAK_EVENTS=%q: want a positive number of events", s)
		}
		events = v
	}
	switch rt := os.Getenv("SOAK_RUNTIME"); rt {
	case "", "embedded":
	case "podman":
		podman = true
	default:
		t.Fatalf("SOAK_RUNTIME=%q: want embedded (the default) or podman", rt)
	}
	return seed, events, podman
}

// soak is the world of one TestYearOfChurn run: the cluster, the Auto
// Scaling group's API stand-in, one IMDS simulator per instance, the
// voters as the world left them, and what each event cost the writer.
type soak struct {
	t     *testing.T
	c     *cluster
	seed  uint64
	kinds []soakKind
	rng   *rand.Rand
	api   *asgtest.Server
	sims  map[int]*imdssim.Sim
	nodes map[int]*node
	// voters are the nodes whose members the cluster should have once
	// settled; next is the next new instance's node number.
	voters []int
	next   int
	// cli carries the writer; probe writes back to back to measure the
	// stalls; both follow the voters.
	cli, probeCli, slotsCli *clientv3.Client
	probe                   *writeProbe
	start                   time.Time
	timeline                []string
	stalls                  map[soakKind][]time.Duration
}

const (
	soakGroup         = "etcd-nodes"
	soakLaunchHook    = "etcd-launch"
	soakTerminateHook = "etcd-terminate"
)

func soakInstance(i int) string { return fmt.Sprintf("i-%017d", i) }

// TestYearOfChurn: a seeded random sequence of what a real fleet lives
// through — OS reboots through the agents' FleetLock, instance-refresh
// steps, spot interruptions, rebalance recommendations, crashes of an
// agent (embedded etcd: the same process) — under a writer, with no
// operator command at any point. The test does only what the world does
// (Zincati's calls and the reboot, EC2's notices and replacements,
// systemd's restart) and, between events, waits for what the world waits
// for (Zincati's grant, the hooks, the replacement's readiness). End: the
// cluster at its size with every voter healthy, at most one reboot slot
// held at any time, and the usual proof; a table of each kind's longest
// write stall and the timeline.
//
//	SOAK_SEED=<seed> SOAK_EVENTS=24 go test -run TestYearOfChurn -v ./test/fault/
func TestYearOfChurn(t *testing.T) {
	t.Parallel()
	seed, events, podman := soakEnv(t)
	kinds, runtime := soakKinds, "embedded"
	if podman {
		kinds, runtime = append(slices.Clone(soakKinds), soakEtcdCrash), "podman"
	}
	plan := soakPlan(seed, events, kinds)
	t.Logf("SOAK_SEED=%d SOAK_EVENTS=%d SOAK_RUNTIME=%s: %v", seed, events, runtime, plan)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay this run: SOAK_SEED=%d SOAK_EVENTS=%d SOAK_RUNTIME=%s go test -count=1 -run 'TestYearOfChurn$' -v ./test/fault/", seed, events, runtime)
		}
	})
	c := newCluster(t)
	if podman {
		c.usePodman()
	}
	c.grace = time.Minute // longer than a reboot or a crash: nobody is replaced as dead here
	c.useV3Discovery(3)

	// Every instance the plan will launch, known to the group up front.
	instances := 3
	for _, k := range plan {
		if k == soakRefresh || k == soakSpot || k == soakRebalance {
			instances++
		}
	}
	var ids []string
	for i := 1; i <= instances; i++ {
		ids = append(ids, soakInstance(i))
	}
	s := &soak{t: t, c: c, seed: seed, kinds: kinds, rng: rand.New(rand.NewPCG(seed, 1)), sims: map[int]*imdssim.Sim{}, nodes: map[int]*node{},
		api: asgtest.Start(t, soakGroup, ids, soakLaunchHook, soakTerminateHook), next: 4, stalls: map[soakKind][]time.Duration{}}
	byIP := map[string]int{}
	for i := 1; i <= instances; i++ {
		byIP[c.ip(i)] = i
	}
	c.configure = func(cfg *config.Config) {
		i := byIP[cfg.Node.IP]
		cfg.Fleet = config.Fleet{Notices: "imds", IMDSEndpoint: s.sims[i].Endpoint, Interval: config.Duration(time.Second),
			AutoScaling: config.AutoScaling{Group: soakGroup, TerminateHook: soakTerminateHook, Region: asgtest.Region, Endpoint: s.api.URL,
				HeartbeatInterval: config.Duration(time.Second), ReplacementWait: config.Duration(2 * time.Minute)}}
		if i > 3 {
			// The founders predate the launch hook; replacements have it.
			cfg.Fleet.AutoScaling.LaunchHook = soakLaunchHook
		}
	}
	c.env = []string{"AWS_ACCESS_KEY_ID=" + asgtest.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + asgtest.SecretAccessKey, "AWS_EC2_METADATA_DISABLED=true"}

	for i := 1; i <= 3; i++ {
		s.sims[i] = imdssim.Start(t, imdssim.Options{Mode: imdssim.Events, IP: c.ip(i), InstanceID: soakInstance(i)})
	}
	formed := c.form(3)
	for i := 1; i <= 3; i++ {
		s.nodes[i] = formed[i]
	}
	s.voters = []int{1, 2, 3}
	s.cli = c.client(s.voters...)
	c.waitMembers(s.cli, time.Minute, s.voters...)
	s.probeCli = c.client(s.voters...)
	w := lintest.Start(t, s.cli, 2)
	s.probe = startWriteProbe(s.probeCli)
	t.Cleanup(s.probe.stop)
	s.slotsCli = c.client(s.voters...)
	slots := watchSlots(t, s.slotsCli, 1)
	s.start = time.Now()

	for k, kind := range plan {
		// The world's own pace: the next Zincati, notice or crash comes
		// when it comes.
		time.Sleep(time.Duration(s.rng.IntN(2000)) * time.Millisecond)
		i := s.voters[s.rng.IntN(len(s.voters))]
		from := time.Now()
		var outcome string
		switch kind {
		case soakReboot:
			outcome = s.reboot(i)
		case soakRefresh:
			outcome = s.refresh(i)
		case soakSpot:
			outcome = s.notice(i, false)
		case soakRebalance:
			outcome = s.notice(i, true)
		case soakCrash:
			outcome = s.crash(i)
		case soakEtcdCrash:
			outcome = s.etcdCrash(i)
		}
		s.settle(fmt.Sprintf("event %d (%s on node %d)", k+1, kind, i))
		gap, _, writes, failed := s.probe.window(from, time.Now())
		s.stalls[kind] = append(s.stalls[kind], gap)
		line := fmt.Sprintf("t+%6.1fs %-17s node %-2d %s; settled in %.1fs, voters %v; longest write stall %s (%d probe writes, %d failed)",
			from.Sub(s.start).Seconds(), kind, i, outcome, time.Since(from).Seconds(), s.voters, gap.Round(time.Millisecond), writes, failed)
		s.timeline = append(s.timeline, line)
		t.Log(line)
	}

	s.probe.stop()
	slots.check(t)
	if r := s.api.Rejected(); len(r) > 0 {
		t.Errorf("the Auto Scaling stand-in refused requests: %v", r)
	}
	c.proof(w, s.cli, s.voters...)
	t.Logf("SOAK_SEED=%d: %d events in %s, the proof holds on nodes %v\n%s\ntimeline:\n%s",
		seed, len(plan), time.Since(s.start).Round(time.Second), s.voters, s.table(), strings.Join(s.timeline, "\n"))
}

// fatalf ends the run with the seed to replay it.
func (s *soak) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("SOAK_SEED=%d: %s\ntimeline so far:\n%s", s.seed, fmt.Sprintf(format, args...), strings.Join(s.timeline, "\n"))
}

// table is, per kind, how often it happened and its longest write stall.
func (s *soak) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-17s %6s %20s\n", "event", "count", "longest write stall")
	for _, k := range s.kinds {
		st := s.stalls[k]
		if len(st) == 0 {
			fmt.Fprintf(&b, "%-17s %6d %20s\n", k, 0, "-")
			continue
		}
		fmt.Fprintf(&b, "%-17s %6d %20s\n", k, len(st), slices.MaxFunc(st, cmp.Compare[time.Duration]).Round(time.Millisecond))
	}
	return b.String()
}

// follow points the clients at the voters.
func (s *soak) follow() {
	eps := s.c.endpoints(s.voters...)
	s.cli.SetEndpoints(eps...)
	s.probeCli.SetEndpoints(eps...)
	s.slotsCli.SetEndpoints(eps...)
}

// settle waits until the members are exactly the voters, each a healthy
// voter with a leader.
func (s *soak) settle(what string) {
	s.t.Helper()
	s.follow()
	if _, err := s.c.e.WaitMembers(s.cli, joinTimeout, s.voters...); err != nil {
		s.fatalf("after %s: %v\n%s", what, err, s.c.describe(s.voters...))
	}
}

// launch boots a new instance (a new address) with its IMDS simulator.
func (s *soak) launch() (int, *node) {
	s.t.Helper()
	j := s.next
	s.next++
	s.sims[j] = imdssim.Start(s.t, imdssim.Options{Mode: imdssim.Events, IP: s.c.ip(j), InstanceID: soakInstance(j)})
	n := s.c.node(j)
	n.start()
	s.nodes[j] = n
	return j, n
}

// imds replaces node i's simulator by one in another mode, on the same
// address and port (the agent keeps its endpoint).
func (s *soak) imds(i int, o imdssim.Options) {
	old := s.sims[i]
	old.Stop()
	o.IP, o.Port, o.InstanceID = s.c.ip(i), old.Port, soakInstance(i)
	s.sims[i] = imdssim.Start(s.t, o)
}

// left waits for node i's agent to exit as left (78) and retires the
// instance.
func (s *soak) left(i int, why string) {
	s.t.Helper()
	if code, err := s.nodes[i].proc.wait(2 * time.Minute); err != nil || code != exitConfig {
		s.fatalf("node %d's agent after %s: exit %d, %v (want %d: left)\n%s", i, why, code, err, exitConfig, s.nodes[i].describe())
	}
	s.sims[i].Stop()
}

// replace swaps node i for node j in the voters.
func (s *soak) replace(i, j int) {
	s.voters = slices.DeleteFunc(s.voters, func(v int) bool { return v == i })
	if j != 0 {
		s.voters = append(s.voters, j)
	}
}

// launchHook waits for node j's launch hook to be completed with CONTINUE.
func (s *soak) launchHook(j int) {
	s.t.Helper()
	deadline := time.Now().Add(joinTimeout)
	for s.api.Completed(soakLaunchHook, soakInstance(j)) != "CONTINUE" {
		if time.Now().After(deadline) {
			s.fatalf("node %d's launch hook not completed with CONTINUE; refused %v\n%s", j, s.api.Rejected(), s.nodes[j].describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *soak) reboot(i int) string {
	s.t.Helper()
	ctx := context.Background()
	kinds, err := s.c.untilGranted(ctx, i, fleetlock.PreRebootPath)
	if err != nil {
		s.fatalf("node %d's Zincati: %v\n%s", i, err, s.c.describe(s.voters...))
	}
	n := s.nodes[i]
	n.powerCut() // the agent and etcd, in its process or its container
	if _, err := n.proc.wait(time.Minute); err != nil {
		s.fatalf("node %d did not die: %v", i, err)
	}
	n.start()
	back, err := s.c.untilGranted(ctx, i, fleetlock.SteadyStatePath)
	if err != nil {
		s.fatalf("node %d's Zincati after the reboot: %v\n%s", i, err, s.c.describe(s.voters...))
	}
	// Granted steady-state is the slot released, as Zincati takes it.
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := s.cli.Get(gctx, keys.FleetLockPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil || resp.Count != 0 {
		s.fatalf("node %d's steady-state was granted, but the reboot slots read %v (%v), want none held", i, resp, err)
	}
	return fmt.Sprintf("pre-reboot granted (%s; refused before %v), rebooted, steady-state granted (refused before %v)",
		kinds[len(kinds)-1], kinds[:len(kinds)-1], back[:len(back)-1])
}

func (s *soak) crash(i int) string {
	s.t.Helper()
	n := s.nodes[i]
	n.kill()
	if _, err := n.proc.wait(time.Minute); err != nil {
		s.fatalf("node %d did not die: %v", i, err)
	}
	n.start()
	if _, err := n.WaitReady(joinTimeout); err != nil {
		s.fatalf("node %d after its crash: %v", i, err)
	}
	return "agent killed (-9) and restarted, ready"
}

// etcdCrash kills node i's etcd container; its agent starts it again (a
// container started anew: its start time changes).
func (s *soak) etcdCrash(i int) string {
	s.t.Helper()
	name := s.nodes[i].containerName()
	started := func() string {
		out, err := s.c.podman("inspect", "--format", "{{.State.StartedAt}}", name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(out)
	}
	before := started()
	if out, err := s.c.podman("kill", name); err != nil {
		s.fatalf("podman kill %s: %v: %s", name, err, out)
	}
	deadline := time.Now().Add(joinTimeout)
	for now := started(); now == "" || now == before; now = started() {
		if time.Now().After(deadline) {
			s.fatalf("node %d's agent did not start its etcd container %s again (started %s)\n%s", i, name, before, s.nodes[i].describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "etcd container killed, started again by its agent"
}

func (s *soak) refresh(i int) string {
	s.t.Helper()
	j, nj := s.launch()
	deadline := time.Now().Add(joinTimeout)
	for nj.report().Phase != report.PhaseStandby || s.api.Completed(soakLaunchHook, soakInstance(j)) != "CONTINUE" {
		if time.Now().After(deadline) {
			s.fatalf("replacement node %d is not a standby with its launch hook completed (phase %s, hook %q)\n%s",
				j, nj.report().Phase, s.api.Completed(soakLaunchHook, soakInstance(j)), nj.describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.imds(i, imdssim.Options{Mode: imdssim.ASGLifecycle})
	if _, err := nj.WaitReady(joinTimeout); err != nil {
		s.fatalf("replacement node %d after node %d's Terminated: %v\n%s", j, i, err, s.c.describe(s.voters...))
	}
	s.left(i, "Terminated")
	if got := s.api.Completed(soakTerminateHook, soakInstance(i)); got != "CONTINUE" {
		s.fatalf("node %d's terminate hook completed with %q, want CONTINUE", i, got)
	}
	s.replace(i, j)
	return fmt.Sprintf("node %d standby, node %d Terminated, node %d promoted, node %d left, both hooks CONTINUE", j, i, j, i)
}

// notice is a spot interruption (the replacement boots once the node is
// gone) or a rebalance recommendation (it boots at once).
func (s *soak) notice(i int, rebalance bool) string {
	s.t.Helper()
	s.imds(i, imdssim.Options{Mode: imdssim.Spot, RebalanceOnly: rebalance})
	j := 0
	var nj *node
	if rebalance {
		j, nj = s.launch()
	}
	s.left(i, "the notice")
	s.replace(i, 0)
	if !rebalance {
		j, nj = s.launch()
	}
	if _, err := nj.WaitReady(joinTimeout); err != nil {
		s.fatalf("replacement node %d after node %d left: %v\n%s", j, i, err, s.c.describe(s.voters...))
	}
	s.launchHook(j)
	s.replace(0, j)
	if rebalance {
		return fmt.Sprintf("node %d launched at the notice, node %d left, node %d ready, launch hook CONTINUE", j, i, j)
	}
	return fmt.Sprintf("node %d left, node %d launched, ready, launch hook CONTINUE", i, j)
}
