package report_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
)

// fakeClock advances one second per reading.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func newRecorder() (*report.Recorder, *fakeClock) {
	c := &fakeClock{t: t0}
	return report.NewRecorder(report.NodeReport{PID: 42, Version: "v1"}, c.now), c
}

func TestRecorderTransitionsDedupedAndCapped(t *testing.T) {
	rec, _ := newRecorder()
	rec.SetPhase(report.PhaseStarting, "")
	rec.SetPhase(report.PhaseLearner, "learner, catching up 10%")
	rec.SetPhase(report.PhaseLearner, "learner, catching up 71%") // progress, same phase
	s := rec.Snapshot()
	if len(s.Transitions) != 2 {
		t.Fatalf("transitions = %+v, want 2 (same phase is not a transition)", s.Transitions)
	}
	if s.Phase != report.PhaseLearner || s.Message != "learner, catching up 71%" {
		t.Fatalf("phase, message = %q, %q", s.Phase, s.Message)
	}
	if want := (report.Transition{At: t0.Add(2 * time.Second), Phase: report.PhaseLearner, Message: "learner, catching up 10%"}); s.Transitions[1] != want {
		t.Fatalf("transition = %+v, want %+v", s.Transitions[1], want)
	}

	for i := range 30 {
		p := report.PhaseHealthy
		if i%2 == 0 {
			p = report.PhaseDegraded
		}
		rec.SetPhase(p, fmt.Sprint(i))
	}
	s = rec.Snapshot()
	if len(s.Transitions) != report.MaxHistory {
		t.Fatalf("kept %d transitions, want %d", len(s.Transitions), report.MaxHistory)
	}
	if last := s.Transitions[len(s.Transitions)-1]; last.Message != "29" || last.Phase != report.PhaseHealthy {
		t.Fatalf("newest transition = %+v, want the 30th, last", last)
	}
	if first := s.Transitions[0]; first.Message != "10" {
		t.Fatalf("oldest kept transition = %+v, want message 10", first)
	}
	for i := 1; i < len(s.Transitions); i++ {
		if !s.Transitions[i].At.After(s.Transitions[i-1].At) {
			t.Fatalf("transitions not oldest first: %+v", s.Transitions)
		}
	}
}

func TestRecorderDecisionsCapped(t *testing.T) {
	rec, _ := newRecorder()
	for i := range 25 {
		rec.AddDecision("remove", fmt.Sprintf("member %d unreachable for 10m, quorum kept", i))
	}
	s := rec.Snapshot()
	if len(s.Decisions) != report.MaxHistory || s.Decisions[0].Reason != "member 5 unreachable for 10m, quorum kept" ||
		s.Decisions[report.MaxHistory-1].Reason != "member 24 unreachable for 10m, quorum kept" {
		t.Fatalf("decisions = %+v, want members 5..24", s.Decisions)
	}
}

func TestRecorderErrorAndUpdate(t *testing.T) {
	rec, _ := newRecorder()
	rec.SetError(errors.New("discovery unreachable"))
	if s := rec.Snapshot(); s.LastError != "discovery unreachable" {
		t.Fatalf("LastError = %q", s.LastError)
	}
	rec.SetError(nil)
	rec.Update(func(r *report.NodeReport) {
		r.Ready = true
		r.Endpoints = []string{"https://10.0.1.5:2379"}
	})
	s := rec.Snapshot()
	if s.LastError != "" || !s.Ready || len(s.Endpoints) != 1 {
		t.Fatalf("snapshot = %+v", s)
	}
	// Snapshots are copies.
	s.Endpoints[0] = "mutated"
	if rec.Snapshot().Endpoints[0] != "https://10.0.1.5:2379" {
		t.Fatal("Snapshot shares its slices with the recorder")
	}
}

func TestRecorderFlush(t *testing.T) {
	rec, clock := newRecorder()
	rec.SetPhase(report.PhaseHealthy, "healthy, 3/3 voters")
	path := filepath.Join(t.TempDir(), "status.json")
	if err := rec.Flush(path); err != nil {
		t.Fatal(err)
	}
	got, err := report.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	clock.mu.Lock()
	last := clock.t
	clock.mu.Unlock()
	if !got.UpdatedAt.Equal(last) {
		t.Fatalf("UpdatedAt = %v, want the clock's last reading %v", got.UpdatedAt, last)
	}
	if want := rec.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("flushed %+v\nsnapshot %+v", got, want)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	rec, _ := newRecorder()
	path := filepath.Join(t.TempDir(), "status.json")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				rec.SetPhase(report.Phase(fmt.Sprint(g, i%3)), "")
				rec.AddDecision("a", "b")
				rec.Update(func(r *report.NodeReport) { r.Endpoints = append(r.Endpoints, "x") })
				if err := rec.Flush(path); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := rec.Snapshot()
	if len(s.Endpoints) != 200 || len(s.Decisions) != report.MaxHistory {
		t.Fatalf("lost updates: %d endpoints, %d decisions", len(s.Endpoints), len(s.Decisions))
	}
	got, err := report.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.UpdatedAt.Equal(s.UpdatedAt) {
		t.Fatalf("file UpdatedAt %v, recorder %v: an older flush landed last", got.UpdatedAt, s.UpdatedAt)
	}
}
