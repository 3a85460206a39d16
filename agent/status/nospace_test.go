package status_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestNoSpaceAlarm fills a real 3-member cluster (quota 64 MiB) with 1 MiB
// values until etcd raises NOSPACE. Status must keep the leader it has, count
// every member healthy (reads work), and name the alarm in plain words with
// what to do, not as raw "memberID:… alarm:NOSPACE" text. Then the fix it
// gives (delete, compact, defragment, disarm) must bring the cluster back.
func TestNoSpaceAlarm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster and fills it to its quota")
	}
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1), b.IP(2), b.IP(3))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := range c.Members {
		if err := c.WaitLinearizable(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	value := strings.Repeat("x", 1<<20)
	full := false
	for i := 0; i < 2*statustest.QuotaBytes>>20 && !full; i++ {
		_, err := cli.Put(ctx, fmt.Sprintf("/big/%03d", i), value)
		switch {
		case errors.Is(err, rpctypes.ErrNoSpace):
			full = true
		case err != nil:
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if !full {
		t.Fatalf("wrote twice the quota without NOSPACE")
	}
	if _, err := cli.Get(ctx, "/big/000"); err != nil {
		t.Fatalf("a linearizable read under NOSPACE: %v", err)
	}

	// The agent on this node reports the same alarm (same code and
	// subject: listed once) and a problem of its own (listed too).
	v := status.Gather(ctx, status.Options{Endpoints: c.Endpoints()[:1], TLS: c.OperatorTLS(t), Timeout: gatherTimeout, CertDir: c.CertDir})
	stale := problem.Kind{Code: "snapshot-stale", Severity: problem.Warning, Title: "snapshot too old"}
	r := liveReport(c, time.Now())
	for _, p := range v.Summary.Problems {
		if p.Code == problem.AlarmNoSpace.Code {
			r.Problems = append(r.Problems, problem.AlarmNoSpace.New(p.Subject, "the agent's words for it"))
		}
	}
	r.Problems = append(r.Problems, stale.New("", "last snapshot 3h ago"))
	opts := status.Options{Endpoints: c.Endpoints()[:1], TLS: c.OperatorTLS(t), Timeout: gatherTimeout, CertDir: c.CertDir, Report: r}
	v = status.Gather(ctx, opts)
	s := v.Summary
	seen := map[string]int{}
	for _, p := range s.Problems {
		seen[string(p.Code)+"/"+p.Subject]++
		if p.Text == "the agent's words for it" {
			t.Errorf("problem %+v: status's own finding should win over the agent's copy", p)
		}
	}
	for key, n := range seen {
		if n != 1 {
			t.Errorf("problem %s listed %d times", key, n)
		}
	}
	if seen["snapshot-stale/"] != 1 {
		t.Errorf("problems %+v: want the agent's snapshot-stale listed", s.Problems)
	}
	if s.Healthy || !s.HasLeader || s.Leader == "" || s.HealthyMembers != 3 || s.Answered != 3 {
		t.Errorf("summary = %+v: want a leader, 3/3 members healthy, and the cluster not healthy", s)
	}
	var nospace []problem.Problem
	for _, p := range s.Problems {
		switch p.Code {
		case problem.AlarmNoSpace.Code:
			nospace = append(nospace, p)
		case problem.NoLeader.Code, problem.MemberUnhealthy.Code:
			t.Errorf("problem %+v: the cluster has a leader and every member answers", p)
		}
	}
	if len(nospace) == 0 {
		t.Fatalf("problems = %+v, want %s", s.Problems, problem.AlarmNoSpace.Code)
	}
	for _, p := range nospace {
		if p.Severity != problem.Critical || !strings.Contains(p.Text, "refuses writes; reads still work") ||
			!strings.Contains(p.Text, "quota 64MiB") || !strings.Contains(p.Fix, "etcd.quotaBackendBytes") {
			t.Errorf("NOSPACE problem %+v: want critical, in words, with the quota and the fix", p)
		}
	}
	for _, e := range v.Endpoints {
		if !e.Healthy || e.Error != "" {
			t.Errorf("row %+v: want healthy (reads work); the alarm is a cluster problem", e)
		}
	}
	if status.ExitCode(v) != status.ExitUnhealthy {
		t.Errorf("exit code %d, want %d", status.ExitCode(v), status.ExitUnhealthy)
	}
	table := render(t, v, "table")
	for _, want := range []string{"Cluster  UNHEALTHY: leader " + s.Leader + ", 3/3 members healthy", "  - [warning] last snapshot 3h ago", "; database space exceeded (NOSPACE)",
		"  - [critical] database space exceeded: member ", "      fix: the agents compact, defragment and disarm by themselves"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, bad := range []string{"memberID:", "alarm:NOSPACE", "no leader", "lost quorum"} {
		if strings.Contains(table, bad) {
			t.Errorf("table shows %q:\n%s", bad, table)
		}
	}
	t.Logf("table under NOSPACE:\n%s", table)

	// The fix status gives, step by step, clears it.
	if _, err := cli.Delete(ctx, "/big/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("delete the big keys: %v", err)
	}
	resp, err := cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	for _, ep := range c.Endpoints() {
		if _, err := cli.Defragment(ctx, ep); err != nil {
			t.Fatalf("defragment %s: %v", ep, err)
		}
	}
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatalf("disarm: %v", err)
	}
	if _, err := cli.Put(ctx, "/after", "ok"); err != nil {
		t.Fatalf("write after the fix: %v", err)
	}
	r.Problems = []problem.Problem{stale.New("", "last snapshot 3h ago")} // the agent saw the alarm go
	v = status.Gather(ctx, opts)
	// The agent's snapshot problem is the only one left.
	if !v.Summary.Healthy || len(v.Summary.Problems) != 1 || v.Summary.Problems[0].Code != stale.Code {
		t.Errorf("after the fix: summary %+v", v.Summary)
	}
}
