package status_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
)

// BenchmarkStatus measures what `etcd-agent status` does on a healthy
// 3-member TLS cluster: member list, per-endpoint status and health from
// every member in parallel, and the rendered table.
//
//	go test -run '^$' -bench Status ./agent/status/
func BenchmarkStatus(b *testing.B) {
	c := statustest.Start(b, "127.0.0.44", "127.0.0.45", "127.0.0.46")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range c.Members {
		if err := c.WaitLinearizable(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
	opts := status.Options{Endpoints: c.Endpoints()[:1], TLS: c.OperatorTLS(b), Timeout: 3 * time.Second, CertDir: c.CertDir}
	for b.Loop() {
		v := status.Gather(ctx, opts)
		if !v.Summary.Healthy {
			b.Fatalf("cluster not healthy: %q", v.Summary.Problems)
		}
		if err := status.Render(io.Discard, v, "table"); err != nil {
			b.Fatal(err)
		}
	}
}
