package status_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// BenchmarkStatus measures what `etcd-agent status` does on a healthy
// 3-member TLS cluster: member list, per-endpoint status and health from
// every member in parallel, and the rendered table.
//
//	go test -run '^$' -bench Status ./agent/status/
func BenchmarkStatus(b *testing.B) {
	n := testnet.Take(b)
	c := statustest.Start(b, n.IP(1), n.IP(2), n.IP(3))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range c.Members {
		if err := c.WaitLinearizable(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
	opts := status.Options{Endpoints: c.Endpoints()[:1], TLS: c.OperatorTLS(b), CertDir: c.CertDir}
	for b.Loop() {
		v := status.Gather(ctx, opts)
		if !v.Summary.Healthy {
			b.Fatalf("cluster not healthy: %+v", v.Summary.Problems)
		}
		if err := status.Render(io.Discard, v, "table"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatusFrozenMember measures the same with one follower frozen
// (SIGSTOP on a real etcd process, bin/etcd): its socket still accepts TCP
// in the kernel, and nothing answers. With the default per-call timeout
// (status.DefaultTimeout) the goal is at most 1.2 s per status.
//
//	go test -run '^$' -bench StatusFrozenMember ./agent/status/
func BenchmarkStatusFrozenMember(b *testing.B) {
	n := testnet.Take(b)
	c := statustest.StartProcesses(b, statustest.EtcdBinary(b), n.IP(1), n.IP(2), n.IP(3))
	tlsCfg, err := pki.ClientTLS(c.CertDir, pki.OperatorCertFile, pki.OperatorKeyFile)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts := status.Options{Endpoints: c.Endpoints(), TLS: tlsCfg, CertDir: c.CertDir}
	// Freeze a follower, so the cluster keeps its leader.
	v := status.Gather(ctx, opts)
	frozen := -1
	for i, m := range c.Members {
		for _, e := range v.Endpoints {
			if e.Endpoint == m.ClientURL && e.Role == "follower" && frozen < 0 {
				frozen = i
			}
		}
	}
	if frozen < 0 {
		b.Fatalf("no follower to freeze: %+v", v.Endpoints)
	}
	if err := c.Freeze(frozen); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Thaw(frozen) }()
	for b.Loop() {
		v = status.Gather(ctx, opts)
		if !v.Summary.HasLeader || v.Summary.HealthyMembers != 2 {
			b.Fatalf("want a leader and 2 healthy members with one frozen: %+v", v.Summary)
		}
		if err := status.Render(io.Discard, v, "table"); err != nil {
			b.Fatal(err)
		}
	}
	for _, e := range v.Endpoints {
		if e.Endpoint == c.Members[frozen].ClientURL {
			b.Logf("frozen member's row: %s", e.Error)
		}
	}
}
