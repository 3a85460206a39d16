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

	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
)

// writeProbe is one client writing back to back: each put's start, end
// and outcome, from which a window's longest gap between two successful
// writes and its p99 latency are read.
type writeProbe struct {
	mu   sync.Mutex
	ops  []probeOp
	stop func()
}

type probeOp struct {
	start, end time.Time
	ok         bool
}

// probeDeadlineEnv sets the probe's per-put deadline (a Go duration;
// 500ms when unset): the longest gap of a coordinated operation is that
// deadline whenever a put in flight at a leadership hand-over is dropped.
const probeDeadlineEnv = "ETCD_AGENT_BENCH_PUT_DEADLINE"

// probeDeadline is the probe's per-put deadline (probeDeadlineEnv).
func probeDeadline(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv(probeDeadlineEnv)
	if v == "" {
		return 500 * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration such as 100ms", probeDeadlineEnv, v)
	}
	return d
}

// startWriteProbe writes through cli until stop, each put with a 500 ms
// deadline or the one given (the benchmarks pass probeDeadline).
func startWriteProbe(cli *clientv3.Client, perPut ...time.Duration) *writeProbe {
	deadline := 500 * time.Millisecond
	if len(perPut) > 0 {
		deadline = perPut[0]
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &writeProbe{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			start := time.Now()
			// A put in flight when leadership changes (a hand-over or an
			// election) is dropped by raft, and one a follower forwarded
			// waits for etcd's request timeout (7 s): the client gives up
			// at its deadline and tries again, as a client should.
			pctx, pcancel := context.WithTimeout(ctx, deadline)
			_, err := cli.Put(pctx, fmt.Sprintf("probe/%08d", i), "v")
			pcancel()
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.ops = append(p.ops, probeOp{start: start, end: time.Now(), ok: err == nil})
			p.mu.Unlock()
			if err != nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	p.stop = func() { cancel(); wg.Wait() }
	return p
}

// window is the longest gap between two successful writes around [from,
// to] (from the last success before from to the first after to: a stall
// that no write ended inside still counts whole), the p99 latency of the
// writes started in it, and how many of them there were and failed.
func (p *writeProbe) window(from, to time.Time) (gap, p99 time.Duration, writes, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	last := from
	var lat []time.Duration
	for _, op := range p.ops {
		if op.ok && op.end.Before(from) {
			last = op.end
		}
		if !op.start.Before(from) && !op.start.After(to) {
			writes++
			lat = append(lat, op.end.Sub(op.start))
			if !op.ok {
				failed++
			}
		}
		if !op.ok || op.end.Before(from) {
			continue
		}
		gap = max(gap, op.end.Sub(last))
		last = op.end
		if op.end.After(to) {
			break // the first success after the window closes the last gap
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return gap, p99, writes, failed
}

// BenchmarkRebootLeaderNode measures what one reboot of the leader's node
// costs a client writing back to back (through the two other members,
// each put with a 500 ms deadline unless ETCD_AGENT_BENCH_PUT_DEADLINE
// says otherwise): the longest gap between two successful
// writes and the p99 put latency, from just before the reboot until the
// node is a healthy voter again (medians over the runs), and the puts that
// failed at their deadline.
// "fleetlock": the node's Zincati asks pre-reboot (leadership is handed
// over, the snapshot taken), the node is killed and started in place, and
// steady-state is asked until granted. "naive": the leader's node is killed
// with no hand-over and started again (the followers elect a leader after
// the 1 s election timeout). Real agent processes, embedded etcd.
//
//	go test -run '^$' -bench RebootLeaderNode -benchtime 3x ./test/fault/
func BenchmarkRebootLeaderNode(b *testing.B) {
	for _, mode := range []string{"fleetlock", "naive"} {
		b.Run(mode, func(b *testing.B) {
			var runs []probeRun
			for i := range b.N {
				b.StopTimer()
				c := newCluster(b)
				c.grace = time.Minute
				c.useV3Discovery(3)
				n := c.form(3)
				cli := c.client(1, 2, 3)
				c.waitMembers(cli, time.Minute, 1, 2, 3)
				leader := c.leaderOf(cli, 1, 2, 3)
				probe := startWriteProbe(c.client(without([]int{1, 2, 3}, leader)...), probeDeadline(b))
				time.Sleep(2 * time.Second)
				ctx := context.Background()
				from := time.Now()
				b.StartTimer()
				if mode == "fleetlock" {
					if _, err := c.untilGranted(ctx, leader, fleetlock.PreRebootPath); err != nil {
						b.Fatal(err)
					}
				}
				n[leader].kill()
				if _, err := n[leader].proc.wait(time.Minute); err != nil {
					b.Fatal(err)
				}
				n[leader].start()
				if mode == "fleetlock" {
					if _, err := c.untilGranted(ctx, leader, fleetlock.SteadyStatePath); err != nil {
						b.Fatal(err)
					}
				} else {
					n[leader].waitReady(readyTimeout)
				}
				b.StopTimer()
				to := time.Now()
				time.Sleep(time.Second)
				probe.stop()
				// This run's cluster stops now: the next run has the
				// machine to itself.
				c.killAll()
				runs = append(runs, probe.run(fmt.Sprintf("run %d: node %d (the leader) rebooted", i+1, leader), from, to))
			}
			reportProbeRuns(b, runs)
		})
	}
}

// failedIn are the start times of the failed puts started in [from, to].
func (p *writeProbe) failedIn(from, to time.Time) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for _, op := range p.ops {
		if !op.ok && !op.start.Before(from) && !op.start.After(to) {
			out = append(out, op.start)
		}
	}
	return out
}

// probeRun is one benchmark run's window of a write probe.
type probeRun struct {
	what           string
	took           time.Duration
	gap, p99       time.Duration
	writes, failed int
}

// run is the probe's figures for the window [from, to] of the run what.
func (p *writeProbe) run(what string, from, to time.Time) probeRun {
	r := probeRun{what: what, took: to.Sub(from)}
	r.gap, r.p99, r.writes, r.failed = p.window(from, to)
	return r
}

// reportProbeRuns prints every run and reports the medians of the longest
// gap and of the p99 latency, and the failed puts per run.
func reportProbeRuns(b *testing.B, runs []probeRun) {
	var gaps, p99s []time.Duration
	var lines []string
	failed := 0
	for _, r := range runs {
		lines = append(lines, fmt.Sprintf("%s in %s: longest gap %s, p99 %s, %d writes (%d failed)",
			r.what, r.took.Round(time.Millisecond), r.gap.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.writes, r.failed))
		gaps, p99s = append(gaps, r.gap), append(p99s, r.p99)
		failed += r.failed
	}
	// Printed, not logged: the benchmark's log shows only its first round
	// (b.N = 1).
	fmt.Printf("%s, %d runs, %s per put:\n  %s\n", b.Name(), len(runs), probeDeadline(b), strings.Join(lines, "\n  "))
	slices.Sort(gaps)
	slices.Sort(p99s)
	b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "max-gap-ms")
	b.ReportMetric(float64(p99s[len(p99s)/2].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(failed)/float64(len(runs)), "failed-puts/op")
}

// leaderOf is the node among idx whose member leads (it fails the
// benchmark or test when none does).
func (c *cluster) leaderOf(cli *clientv3.Client, idx ...int) int {
	c.t.Helper()
	for _, k := range idx {
		if leads, err := c.leaderIs(cli, k); err == nil && leads {
			return k
		}
	}
	c.t.Fatalf("no leader among nodes %v\n%s", idx, c.describe(idx...))
	return 0
}

// killAll kills every node the scenario started.
func (c *cluster) killAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		n.kill()
	}
}
