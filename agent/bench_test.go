package agent_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkBootstrap3 measures a 3-node bootstrap through v3 discovery on
// the embedded runtime: from starting the agents to every agent's READY=1.
//
//	go test -run '^$' -bench Bootstrap3 -benchtime 3x ./agent/
func BenchmarkBootstrap3(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		h := newHarness(b)
		ctx, cancel := context.WithCancel(context.Background())
		token := h.startDiscovery(ctx, 3)
		b.StartTimer()
		start := time.Now()
		nodes := make([]*node, 3)
		for j := range nodes {
			nodes[j] = h.start(ctx, j+1, h.config(j+1, 3, h.v3Discovery(token)))
		}
		for _, n := range nodes {
			n.waitReady(b, readyTimeout)
		}
		total += time.Since(start)
		b.StopTimer()
		for _, n := range nodes {
			n.stop()
		}
		cancel()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/ready")
}

// BenchmarkReplaceNode measures self-healing: a node of three is gone for
// longer than the grace period (as when an Auto Scaling group replaces a
// dead instance), and a fresh node with a new IP and no data starts. The
// figure is the time from starting it to three healthy voters (its READY=1,
// sent only after promotion).
//
//	go test -run '^$' -bench ReplaceNode -benchtime 3x ./agent/
func BenchmarkReplaceNode(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		h := newHarness(b)
		ctx, cancel := context.WithCancel(context.Background())
		token, nodes := formCluster(b, h, ctx, 3)
		nodes[2].stop()
		// The fresh node waits out the grace with its own probes whatever
		// happened before it started: the figure includes the grace.
		time.Sleep(h.grace() + time.Second)
		b.StartTimer()
		start := time.Now()
		fresh := h.start(ctx, 4, h.config(4, 3, h.v3Discovery(token)))
		fresh.waitReady(b, joinTimeout)
		total += time.Since(start)
		b.StopTimer()
		cli := clusterClient(h, nodes[0], nodes[1], fresh)
		h.wantMembers(b, cli, 1, 2, 4)
		cli.Close()
		for _, n := range []*node{nodes[0], nodes[1], fresh} {
			n.stop()
		}
		cancel()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/replace")
}
