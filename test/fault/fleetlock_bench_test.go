package fault_test

import (
	"context"
	"fmt"
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

func startWriteProbe(cli *clientv3.Client) *writeProbe {
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
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
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
// each put with a 500 ms deadline): the longest gap between two successful
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
			var gaps, p99s []time.Duration
			var failedPuts float64
			var runs []string
			for i := range b.N {
				b.StopTimer()
				c := newCluster(b)
				c.grace = time.Minute
				c.useV3Discovery(3)
				n := c.form(3)
				cli := c.client(1, 2, 3)
				c.waitMembers(cli, time.Minute, 1, 2, 3)
				leader := 0
				for k := 1; k <= 3; k++ {
					if leads, err := c.leaderIs(cli, k); err == nil && leads {
						leader = k
					}
				}
				if leader == 0 {
					b.Fatal("no leader")
				}
				var others []int
				for k := 1; k <= 3; k++ {
					if k != leader {
						others = append(others, k)
					}
				}
				probe := startWriteProbe(c.client(others...))
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
				for k := 1; k <= 3; k++ {
					n[k].kill()
				}
				gap, p99, writes, failed := probe.window(from, to)
				runs = append(runs, fmt.Sprintf("run %d: node %d (the leader) rebooted in %s: longest gap %s, p99 %s, %d writes (%d failed)",
					i+1, leader, to.Sub(from).Round(time.Millisecond), gap.Round(time.Millisecond), p99.Round(time.Millisecond), writes, failed))
				gaps, p99s = append(gaps, gap), append(p99s, p99)
				failedPuts += float64(failed)
			}
			// Printed, not logged: the benchmark's log shows only its
			// first round (b.N = 1).
			fmt.Printf("%s, %d runs:\n  %s\n", b.Name(), len(runs), strings.Join(runs, "\n  "))
			slices.Sort(gaps)
			slices.Sort(p99s)
			b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "max-gap-ms")
			b.ReportMetric(float64(p99s[len(p99s)/2].Microseconds())/1000, "p99-ms")
			b.ReportMetric(failedPuts/float64(b.N), "failed-puts/op")
		})
	}
}
