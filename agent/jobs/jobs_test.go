package jobs

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A job stuck in a long round does not delay another job's rounds.
func TestJobsRunOnTheirOwnGoroutines(t *testing.T) {
	release := make(chan struct{})
	var slowRounds, fastRounds atomic.Int32
	g := NewGroup(context.Background(), Options{})
	g.Start([]Job{
		{Name: "slow", Every: time.Millisecond, Start: FromEtcd, Run: func(ctx context.Context) error {
			slowRounds.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}},
		{Name: "fast", Every: time.Millisecond, Start: FromEtcd, Run: func(context.Context) error { fastRounds.Add(1); return nil }},
	}, FromEtcd)
	waitFor(t, "20 rounds of the fast job while the slow one is stuck", func() bool { return fastRounds.Load() >= 20 })
	if n := slowRounds.Load(); n != 1 {
		t.Errorf("slow job ran %d rounds while its first was stuck, want 1 (rounds of one job never overlap)", n)
	}
	var running bool
	for _, s := range g.States() {
		if s.Name == "slow" {
			running = s.Running && !s.Since.IsZero()
		}
	}
	if !running {
		t.Errorf("States() = %+v: the slow job should be shown running", g.States())
	}
	close(release)
	g.Stop()
}

// Start starts only the jobs of its stage.
func TestStartByStage(t *testing.T) {
	var ran [3]atomic.Bool
	table := []Job{
		{Name: "membership", Every: time.Millisecond, Start: FromMembership, Run: func(context.Context) error { ran[0].Store(true); return nil }},
		{Name: "etcd", Every: time.Millisecond, Start: FromEtcd, Run: func(context.Context) error { ran[1].Store(true); return nil }},
		{Name: "ready", Every: time.Millisecond, Start: FromReady, Run: func(context.Context) error { ran[2].Store(true); return nil }},
	}
	g := NewGroup(context.Background(), Options{})
	defer g.Stop()
	g.Start(table, FromMembership)
	waitFor(t, "the membership job", ran[0].Load)
	time.Sleep(20 * time.Millisecond)
	if ran[1].Load() || ran[2].Load() {
		t.Fatal("jobs of later stages ran before their stage started")
	}
	g.Start(table, FromEtcd)
	waitFor(t, "the etcd job", ran[1].Load)
	if ran[2].Load() {
		t.Fatal("a FromReady job ran before ready")
	}
	g.Start(table, FromReady)
	waitFor(t, "the ready job", ran[2].Load)
}

// While leaving, only jobs marked WhileLeaving run.
func TestLeavingSkipsJobs(t *testing.T) {
	var leaving atomic.Bool
	leaving.Store(true)
	var skipped, kept atomic.Int32
	g := NewGroup(context.Background(), Options{Leaving: leaving.Load})
	defer g.Stop()
	g.Start([]Job{
		{Name: "talks-to-etcd", Every: time.Millisecond, Start: FromEtcd, Run: func(context.Context) error { skipped.Add(1); return nil }},
		{Name: "health", Every: time.Millisecond, Start: FromEtcd, WhileLeaving: true, Run: func(context.Context) error { kept.Add(1); return nil }},
	}, FromEtcd)
	waitFor(t, "rounds of the job that runs while leaving", func() bool { return kept.Load() >= 10 })
	if n := skipped.Load(); n != 0 {
		t.Fatalf("a job not marked WhileLeaving ran %d rounds while leaving", n)
	}
	leaving.Store(false)
	waitFor(t, "the other job once leaving is over", func() bool { return skipped.Load() > 0 })
}

// A job's error ends the pass: Ended carries it, and that job stops.
func TestErrorEndsThePass(t *testing.T) {
	want := errors.New("rejoin needed")
	var rounds atomic.Int32
	g := NewGroup(context.Background(), Options{})
	defer g.Stop()
	g.Start([]Job{{Name: "health", Every: time.Millisecond, Start: FromReady, Run: func(context.Context) error {
		rounds.Add(1)
		return want
	}}}, FromReady)
	select {
	case err := <-g.Ended():
		if !errors.Is(err, want) {
			t.Fatalf("Ended() = %v, want %v", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the job's error did not end the pass")
	}
	time.Sleep(20 * time.Millisecond)
	if n := rounds.Load(); n != 1 {
		t.Errorf("job ran %d rounds, want 1: a job that ended the pass stops", n)
	}
}

// Stop cancels the rounds in progress and waits for them.
func TestStopWaitsForRounds(t *testing.T) {
	started, returned := make(chan struct{}), atomic.Bool{}
	g := NewGroup(context.Background(), Options{})
	g.Start([]Job{{Name: "long", Every: time.Millisecond, Start: FromEtcd, Run: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond)
		returned.Store(true)
		return ctx.Err()
	}}}, FromEtcd)
	<-started
	g.Stop()
	if !returned.Load() {
		t.Fatal("Stop returned before the round in progress did")
	}
	select {
	case err := <-g.Ended():
		t.Fatalf("a round cancelled by Stop ended the pass with %v", err)
	default:
	}
}

// Start after Stop (the stages reaching a stage while the pass stops) starts
// nothing: no job runs past Stop's wait. Run it with -race: an Add racing
// Stop's Wait was what the race detector found in the agent's passes.
func TestStartAfterStopStartsNothing(t *testing.T) {
	var ran atomic.Bool
	table := []Job{{Name: "late", Every: time.Millisecond, Start: FromReady, Run: func(context.Context) error {
		ran.Store(true)
		return nil
	}}}
	g := NewGroup(context.Background(), Options{})
	stopped := make(chan struct{})
	go func() {
		g.Stop()
		close(stopped)
	}()
	<-stopped
	g.Start(table, FromReady)
	time.Sleep(20 * time.Millisecond)
	if ran.Load() {
		t.Fatal("a job started after Stop ran")
	}
	if s := g.States(); len(s) != 0 {
		t.Fatalf("states after a Start past Stop: %+v", s)
	}
}
