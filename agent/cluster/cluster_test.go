package cluster_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
)

// One survey against a real three-member cluster: every member answers with
// its own status, the leader is the one the members name, every member is
// caught up; with a member stopped, its row says why and the rest answer.
func TestSurveyRealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	c := statustest.Start(t, "127.0.14.1", "127.0.14.2", "127.0.14.3")
	cli, err := cluster.Dial(c.CertDir, c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// An idle cluster: every member has applied what the leader committed
	// (a member may trail by an entry at the moment it answers, so look
	// again for a few seconds before calling it behind).
	var s cluster.Survey
	for deadline := time.Now().Add(5 * time.Second); ; {
		if s, err = cluster.Take(ctx, cli, cluster.Options{Alarms: true, HashKV: true}); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(s.Members, func(m cluster.Member) bool { return !s.CaughtUp(m) }) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(s.Members) != 3 || s.ClusterID == 0 {
		t.Fatalf("survey: %d members, cluster %x; want 3 members of a cluster", len(s.Members), s.ClusterID)
	}
	leader := c.Members[c.Leader()].Name
	if got := s.Name(s.Leader()); got != leader {
		t.Errorf("survey leader %s, the members say %s", got, leader)
	}
	for _, m := range s.Members {
		if !m.Answered() || m.Endpoint == "" || m.DBSize == 0 || m.Quota != statustest.QuotaBytes || m.Version == "" {
			t.Errorf("member %s: %+v; want an answer with its status", m.Name, m)
		}
		if !s.CaughtUp(m) {
			t.Errorf("member %s applied %d, leader committed %d: want caught up", m.Name, m.AppliedIndex, s.Committed())
		}
	}
	if s.AlarmsErr != nil || len(s.Alarms) != 0 {
		t.Errorf("alarms %v (%v), want none", s.Alarms, s.AlarmsErr)
	}
	if s.HashKV == nil || s.HashKV.Mismatch {
		t.Errorf("HashKV %+v, want compared without mismatch", s.HashKV)
	}

	stopped := (c.Leader() + 1) % 3
	c.Stop(stopped)
	s, err = cluster.Take(ctx, cli, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Members {
		switch {
		case m.Name == c.Members[stopped].Name && m.Answered():
			t.Errorf("stopped member %s answered: %+v", m.Name, m)
		case m.Name == c.Members[stopped].Name && m.Err == "":
			t.Errorf("stopped member %s has no reason", m.Name)
		case m.Name != c.Members[stopped].Name && !m.Answered():
			t.Errorf("member %s did not answer: %s", m.Name, m.Err)
		}
	}
}

// The membership lock: one holder at a time, Check proves it is held, and a
// released lock is taken by the next.
func TestLockAndHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd member")
	}
	c := statustest.Start(t, "127.0.14.11")
	cli, err := cluster.Dial(c.CertDir, c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	first, err := cluster.TakeLock(ctx, cli, time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Check(ctx); err != nil {
		t.Fatalf("Check of a held lock: %v", err)
	}
	if held, err := cluster.LockHeld(ctx, cli); err != nil || !held {
		t.Fatalf("LockHeld = %v, %v; want true", held, err)
	}
	if _, err := cluster.TakeLock(ctx, cli, 300*time.Millisecond, log); err == nil {
		t.Fatal("a second holder took the lock while the first held it")
	}
	first.Release()
	if err := first.Check(ctx); !errors.Is(err, cluster.ErrLockLost) {
		t.Fatalf("Check after Release = %v, want ErrLockLost", err)
	}
	second, err := cluster.TakeLock(ctx, cli, time.Second, log)
	if err != nil {
		t.Fatalf("lock not free after Release: %v", err)
	}
	second.Release()

	at := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	if err := cluster.Beat(ctx, cli, 0xabc, at); err != nil {
		t.Fatal(err)
	}
	beats, err := cluster.Heartbeats(ctx, cli)
	if err != nil || !beats[0xabc].Equal(at) {
		t.Fatalf("Heartbeats = %v, %v; want 0xabc at %s", beats, err, at)
	}
	if err := cluster.ForgetHeartbeat(ctx, cli, 0xabc); err != nil {
		t.Fatal(err)
	}
	if beats, _ := cluster.Heartbeats(ctx, cli); len(beats) != 0 {
		t.Fatalf("heartbeat not forgotten: %v", beats)
	}
}
