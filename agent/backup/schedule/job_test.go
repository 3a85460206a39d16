package schedule_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup/schedule"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
)

func TestRoundEvery(t *testing.T) {
	for _, c := range []struct {
		interval, want time.Duration
	}{
		{3 * time.Second, time.Second}, // at least each second
		{20 * time.Second, 5 * time.Second},
		{2 * time.Minute, 30 * time.Second},
		{time.Hour, time.Minute}, // at most each minute
	} {
		if got := schedule.RoundEvery(c.interval); got != c.want {
			t.Errorf("RoundEvery(%s) = %s, want %s", c.interval, got, c.want)
		}
	}
}

func TestVerifyHost(t *testing.T) {
	for ip, want := range map[string]string{"127.0.8.31": "127.0.8.31", "10.0.1.5": "127.0.0.1", "::1": "::1"} {
		if got := schedule.VerifyHost(netip.MustParseAddr(ip)); got != want {
			t.Errorf("verifyHost(%s) = %s, want %s", ip, got, want)
		}
	}
}

// TestSnapshotSource: one survey picks a follower rather than the leader,
// and another follower when that one is gone.
func TestSnapshotSource(t *testing.T) {
	if testing.Short() {
		t.Skip("three etcd members")
	}
	c := statustest.Start(t, "127.0.8.16", "127.0.8.17", "127.0.8.18")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitLinearizable(ctx, 0); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	leader := c.Leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	ep, err := schedule.SnapshotSource(ctx, cli, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	first := slices.Index(c.Endpoints(), ep)
	if first < 0 || first == leader {
		t.Fatalf("source %s: want a follower (leader %s)", ep, c.Members[leader].ClientURL)
	}
	c.Stop(first)
	ep, err = schedule.SnapshotSource(ctx, cli, time.Now)
	if i := slices.Index(c.Endpoints(), ep); err != nil || i == first || i == leader {
		t.Fatalf("source %s with follower %d stopped: want the other follower (%v)", ep, first, err)
	}
}
