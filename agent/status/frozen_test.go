package status_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestFrozenMember freezes one real etcd process (SIGSTOP): its row must say
// it gave no answer within the per-call timeout and what the diagnosis dial
// saw, the others stay healthy under their leader. (How long it takes is
// BenchmarkStatusFrozenMember's figure, not an assertion here.)
func TestFrozenMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster of processes")
	}
	b := testnet.Take(t)
	c := statustest.StartProcesses(t, statustest.EtcdBinary(t), b.IP(1), b.IP(2), b.IP(3))
	tlsCfg, err := pki.ClientTLS(c.CertDir, pki.OperatorCertFile, pki.OperatorKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const timeout = 2 * time.Second
	opts := status.Options{Endpoints: c.Endpoints(), TLS: tlsCfg, Timeout: timeout, CertDir: c.CertDir}
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
		t.Fatalf("no follower to freeze: %+v", v.Endpoints)
	}
	if err := c.Freeze(frozen); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Thaw(frozen) }()

	v = status.Gather(ctx, opts)
	name := c.Members[frozen].Name
	for _, e := range v.Endpoints {
		if e.Name != name {
			if !e.Healthy {
				t.Errorf("live member's row %+v, want healthy", e)
			}
			continue
		}
		if e.Healthy || !strings.Contains(e.Error, "get status: no answer in 2s") || !strings.Contains(e.Error, "TLS handshake gets no answer") {
			t.Errorf("frozen member's row error %q: want no answer in 2s and the TLS diagnosis", e.Error)
		}
	}
	s := v.Summary
	if !s.HasLeader || s.HealthyMembers != 2 || s.Healthy {
		t.Errorf("summary %+v, want a leader and 2/3 healthy", s)
	}
	if !slices.ContainsFunc(s.Problems, func(p problem.Problem) bool { return p.Code == problem.MemberUnhealthy.Code && p.Subject == name }) {
		t.Errorf("problems %+v, want %s about %s", s.Problems, problem.MemberUnhealthy.Code, name)
	}
	if err := c.Thaw(frozen); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitLinearizable(ctx, t, frozen); err != nil {
		t.Fatal(err)
	}
	if v := status.Gather(ctx, opts); !v.Summary.Healthy {
		t.Errorf("thawed: summary %+v", v.Summary)
	}
}
