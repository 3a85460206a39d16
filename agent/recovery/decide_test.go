package recovery

import (
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/refusal"
	"github.com/etcd-agent/etcd-agent/discovery"
)

func TestRefusal(t *testing.T) {
	const c1, c2 = 0xc1, 0xc2
	down := Probe{Endpoint: "https://10.0.1.6:2379", Err: "connection refused"}
	for _, tc := range []struct {
		name   string
		facts  QuorumFacts
		refuse string // substring of the refusal; "" = allowed
	}{
		{"nothing answers", QuorumFacts{Probes: []Probe{down}}, ""},
		{"members run without a quorum", QuorumFacts{Probes: []Probe{
			{Endpoint: "https://10.0.1.5:2379", Answered: true, ClusterID: c1, RaftIndex: 90}, down,
		}, DataClusterID: c1}, ""},
		{"a quorum answers", QuorumFacts{ReadOK: true, ReadVia: "https://10.0.1.6:2379", ReadClusterID: c1, DataClusterID: c1},
			"still has a quorum: a linearizable read through https://10.0.1.6:2379"},
		{"another cluster answers with a quorum", QuorumFacts{ReadOK: true, ReadVia: "https://10.0.1.7:2379", ReadClusterID: c2, DataClusterID: c1},
			"moves this data aside and joins cluster c2"},
		{"a quorum answers, from a snapshot", QuorumFacts{ReadOK: true, ReadVia: "x", ReadClusterID: c1}, "still has a quorum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Refusal(tc.facts)
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refuse != "" && (!refusal.Is(err) || !strings.Contains(err.Error(), tc.refuse) || !strings.HasPrefix(err.Error(), "refused: ")):
				t.Fatalf("Refusal = %v, want a refusal (refusal.Error: the CLI exits 3) containing %q", err, tc.refuse)
			}
		})
	}
}

func TestClaim(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	req := Request{From: FromMember, Token: "t-new"}
	done := &discovery.Recovery{Generation: 1, State: discovery.RecoveryDone, By: "x", Token: "t1", ClusterID: "c2", Replaced: []string{"c1"},
		Endpoints: []string{"https://10.0.1.7:2379", "https://10.0.1.8:2379"}}
	doneOld := &discovery.Recovery{Generation: 1, State: discovery.RecoveryDone, By: "x", Token: "t1", ClusterID: "c2", Replaced: []string{"c1"}}
	started := &discovery.Recovery{Generation: 2, State: discovery.RecoveryStarted, By: "etcd-10-0-1-6", Token: "t-other", Replaced: []string{"a1"}}
	for _, tc := range []struct {
		name     string
		facts    ClaimFacts
		gen      int
		replaced []string
		refuse   string
	}{
		{"first recovery", ClaimFacts{Self: "etcd-10-0-1-5", Request: req, Known: []string{"c1", "", "c1"}, Now: now}, 1, []string{"c1"}, ""},
		{"after a finished one whose members were asked: its cluster is replaced too",
			ClaimFacts{Existing: done, Self: "etcd-10-0-1-5", Request: req, Known: []string{"c2"}, Now: now,
				Checked: true, Probed: []string{"https://10.0.1.5:2379", "https://10.0.1.7:2379", "https://10.0.1.8:2379"}}, 2, []string{"c1", "c2"}, ""},
		// Issue 20 rule 2: a finished recovery is a barrier.
		{"after a finished one whose members were not all asked", ClaimFacts{Existing: done, Self: "etcd-10-0-1-5", Request: req, Now: now,
			Checked: true, Probed: []string{"https://10.0.1.5:2379", "https://10.0.1.7:2379"}}, 0, nil,
			"did not ask its members at https://10.0.1.8:2379: a second recovery would replace it silently. Check that cluster c2 is gone, then run recover again with --replaces 1"},
		{"after a finished one that names no endpoints", ClaimFacts{Existing: doneOld, Self: "etcd-10-0-1-5", Request: req, Now: now, Checked: true}, 0, nil,
			"names none of that cluster's endpoints"},
		{"a finished one named with --replaces", ClaimFacts{Existing: doneOld, Self: "etcd-10-0-1-5", Request: Request{From: FromMember, Token: "t-new", Replaces: 1}, Now: now, Checked: true},
			2, []string{"c1", "c2"}, ""},
		{"--replaces names an older generation", ClaimFacts{Existing: done, Self: "etcd-10-0-1-5", Request: Request{From: FromSnapshot, Token: "t-new", Replaces: 7}, Now: now}, 0, nil,
			"--replaces 7: the registry's newest is recovery 1"},
		{"--replaces without any recovery", ClaimFacts{Self: "etcd-10-0-1-5", Request: Request{From: FromSnapshot, Token: "t-new", Replaces: 1}, Now: now}, 0, nil,
			"--replaces 1: the registry records no recovery"},
		{"the command's first look, before the quorum check", ClaimFacts{Existing: done, Self: "etcd-10-0-1-5", Request: req, Now: now}, 2, []string{"c1", "c2"}, ""},
		{"another node's unfinished recovery", ClaimFacts{Existing: started, Self: "etcd-10-0-1-5", Request: req, Now: now}, 0, nil, "--takeover"},
		{"taken over", ClaimFacts{Existing: started, Self: "etcd-10-0-1-5", Request: Request{From: FromMember, Token: "t-new", Takeover: true}, Now: now}, 3, []string{"a1"}, ""},
		{"our own, resumed", ClaimFacts{Existing: &discovery.Recovery{Generation: 4, State: discovery.RecoveryStarted, By: "etcd-10-0-1-5", Token: "t-new", Replaced: []string{"z"}},
			Self: "etcd-10-0-1-5", Request: req, Known: []string{"other"}, Now: now}, 4, []string{"z"}, ""},
		{"our own that failed: a new generation", ClaimFacts{Existing: &discovery.Recovery{Generation: 4, State: discovery.RecoveryFailed, By: "etcd-10-0-1-5", Token: "t-new", ClusterID: "dead", Replaced: []string{"z"}},
			Self: "etcd-10-0-1-5", Request: req, Now: now}, 5, []string{"dead", "z"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := Claim(tc.facts)
			if tc.refuse != "" {
				if !refusal.Is(err) || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("Claim = %+v, %v; want a refusal (refusal.Error) mentioning %q", rec, err, tc.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Generation != tc.gen || strings.Join(rec.Replaced, ",") != strings.Join(tc.replaced, ",") {
				t.Fatalf("Claim = generation %d replacing %v, want %d replacing %v", rec.Generation, rec.Replaced, tc.gen, tc.replaced)
			}
		})
	}
}

func TestSupersededBy(t *testing.T) {
	rec := &discovery.Recovery{Generation: 1, State: discovery.RecoveryStarted, By: "n1", ClusterID: "c2", Replaced: []string{"c1"}}
	if why, ok := SupersededBy(rec, 0xc1); !ok || !strings.Contains(why, "cluster c1") {
		t.Errorf("data of the replaced cluster: %q, %v; want superseded", why, ok)
	}
	if _, ok := SupersededBy(rec, 0xc2); ok {
		t.Error("data of the new cluster itself counted as superseded")
	}
	if _, ok := SupersededBy(rec, 0xc3); ok {
		t.Error("data of an unrelated cluster counted as superseded")
	}
	if _, ok := SupersededBy(nil, 0xc1); ok {
		t.Error("no record counted as superseded")
	}
	claimed := *rec
	claimed.ClusterID = ""
	if _, ok := SupersededBy(&claimed, 0xc1); ok {
		t.Error("a claim without a new cluster yet counted as superseded: a failed recovery would make every old member move its data aside")
	}
	failed := *rec
	failed.State = discovery.RecoveryFailed
	if _, ok := SupersededBy(&failed, 0xc1); ok {
		t.Error("a failed recovery counted as superseded")
	}
}

func TestRequestFile(t *testing.T) {
	dataDir := t.TempDir() + "/data"
	if _, ok := Pending(dataDir); ok {
		t.Fatal("pending without a request file")
	}
	now := time.Now()
	req := Request{From: FromSnapshot, Snapshot: "latest", Token: NewToken("prod", now), RequestedAt: now, State: Requested}
	if err := WriteRequest(dataDir, req); err != nil {
		t.Fatal(err)
	}
	got, ok := Pending(dataDir)
	if !ok || got.Token != req.Token || got.Describe() != "snapshot latest" {
		t.Fatalf("Pending = %+v, %v", got, ok)
	}
	for _, s := range []State{Running, Starting} {
		req.State = s
		_ = WriteRequest(dataDir, req)
		if _, ok := Pending(dataDir); !ok {
			t.Errorf("state %s not pending", s)
		}
	}
	for _, s := range []State{Done, Refused, Failed} {
		req.State = s
		_ = WriteRequest(dataDir, req)
		if _, ok := Pending(dataDir); ok {
			t.Errorf("state %s still pending", s)
		}
	}
	if !strings.HasPrefix(req.Token, "prod-recovered-") || req.Token == NewToken("prod", now.Add(time.Nanosecond)) {
		t.Errorf("token %q: want prod-recovered-<time>, unique", req.Token)
	}
}
