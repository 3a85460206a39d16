package report_test

import (
	"path/filepath"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// TestRecorderProblemsBySource: each source replaces only its own problems;
// the report holds their union, most severe first, and survives the file.
func TestRecorderProblemsBySource(t *testing.T) {
	rec, _ := newRecorder()
	stale := problem.Kind{Code: "snapshot-stale", Severity: problem.Warning, Title: "snapshot too old"}
	rec.SetProblems("backup", []problem.Problem{stale.New("", "last snapshot 3h ago")})
	rec.SetProblems("health", []problem.Problem{problem.AlarmNoSpace.New("etcd-a", "full")})
	got := rec.Snapshot().Problems
	if len(got) != 2 || got[0].Code != problem.AlarmNoSpace.Code || got[1].Code != "snapshot-stale" {
		t.Fatalf("problems = %+v, want NOSPACE then snapshot-stale", got)
	}
	rec.SetProblems("health", nil)
	if got := rec.Snapshot().Problems; len(got) != 1 || got[0].Code != "snapshot-stale" {
		t.Fatalf("after health cleared: %+v, want backup's only", got)
	}

	rec.AddDecision("join", "x")
	rec.AddDecision("add-learner", "y")
	rec.AddDecision("add-learner", "z")
	path := filepath.Join(t.TempDir(), "status.json")
	if err := rec.Flush(path); err != nil {
		t.Fatal(err)
	}
	back, err := report.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.DecisionCounts["add-learner"] != 2 || back.DecisionCounts["join"] != 1 || len(back.Problems) != 1 || back.Problems[0].Text != "last snapshot 3h ago" {
		t.Errorf("read back: counts %v, problems %+v", back.DecisionCounts, back.Problems)
	}
	// A snapshot is a copy: changing it changes nothing in the recorder.
	s := rec.Snapshot()
	s.DecisionCounts["join"] = 99
	s.Problems[0].Text = "changed"
	if s2 := rec.Snapshot(); s2.DecisionCounts["join"] != 1 || s2.Problems[0].Text == "changed" {
		t.Errorf("snapshot shares state with the recorder: %+v", s2)
	}
}
