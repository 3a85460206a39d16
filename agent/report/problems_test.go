package report_test

import (
	"path/filepath"
	"testing"
	"time"

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

// TestRecorderProblemsSinceAndVisibleAfter: a problem found again keeps the
// time it was first found; one whose kind asks for it is published only
// once it has lasted VisibleAfter, so a blip does not flap.
func TestRecorderProblemsSinceAndVisibleAfter(t *testing.T) {
	rec, _ := newRecorder() // its clock advances one second per reading
	slow := problem.Kind{Code: "snapshot-failed", Severity: problem.Warning, Title: "snapshot failed", VisibleAfter: 3 * time.Second}
	rec.SetProblems("health", []problem.Problem{problem.MemberUnhealthy.New("etcd-a", "down")})
	first := rec.Snapshot().Problems[0].Since
	rec.SetProblems("health", []problem.Problem{problem.MemberUnhealthy.New("etcd-a", "still down")})
	if p := rec.Snapshot().Problems[0]; !p.Since.Equal(first) || p.Text != "still down" || first.IsZero() {
		t.Errorf("found again: %+v, want since %s kept and the new text", p, first)
	}

	rec.SetProblems("backup", []problem.Problem{slow.New("", "upload failed")}) // t+0
	if hasCode(rec.Snapshot().Problems, "snapshot-failed") {
		t.Error("published at once despite VisibleAfter")
	}
	rec.SetProblems("backup", nil) // a blip: gone before it was shown
	rec.SetProblems("backup", []problem.Problem{slow.New("", "upload failed")})
	for range 3 {
		if hasCode(rec.Snapshot().Problems, "snapshot-failed") {
			break
		}
		rec.SetProblems("backup", []problem.Problem{slow.New("", "upload failed")})
	}
	if !hasCode(rec.Snapshot().Problems, "snapshot-failed") {
		t.Errorf("not published after lasting VisibleAfter: %+v", rec.Snapshot().Problems)
	}
}

func hasCode(ps []problem.Problem, code problem.Code) bool {
	for _, p := range ps {
		if p.Code == code {
			return true
		}
	}
	return false
}
