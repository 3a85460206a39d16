package membership

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const selfURL = "https://10.0.0.9:2380"

func voter(id uint64, ip string, healthy bool, downFor time.Duration) ClusterMember {
	return ClusterMember{ID: id, Name: "etcd-" + ip, PeerURLs: []string{"https://" + ip + ":2380"},
		ClientURLs: []string{"https://" + ip + ":2379"}, Healthy: healthy, DownFor: downFor}
}

func TestPlanJoin(t *testing.T) {
	const grace = 10 * time.Minute
	up := func(id uint64, ip string) ClusterMember { return voter(id, ip, true, 0) }
	down := func(id uint64, ip string, d time.Duration) ClusterMember { return voter(id, ip, false, d) }
	pastSelf := voter(9, "10.0.0.9", false, time.Minute)
	unstartedSelf := ClusterMember{ID: 9, PeerURLs: []string{selfURL}, IsLearner: true}
	foundingSelf := ClusterMember{ID: 9, Name: "etcd-10-0-0-9", PeerURLs: []string{selfURL}}
	pastLearner := voter(9, "10.0.0.9", false, 0)
	pastLearner.IsLearner = true
	otherLearner := func(healthy bool, d time.Duration) ClusterMember {
		m := voter(7, "10.0.0.7", healthy, d)
		m.IsLearner = true
		return m
	}

	tests := []struct {
		name      string
		members   []ClusterMember
		size      int
		want      StepKind
		remove    uint64
		reason    string
		handovers []uint64
	}{
		{"room: add", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2")}, 3, StepAdd, 0, "2 of 3 desired", nil},
		{"full and healthy: standby", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(3, "10.0.0.3")}, 3, StepStandby, 0, "all healthy", nil},
		{"dead within grace: standby", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), down(3, "10.0.0.3", time.Minute)}, 3, StepStandby, 0, "removed after 10m", nil},
		{"dead past grace: remove it", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), down(3, "10.0.0.3", time.Hour)}, 3, StepRemove, 3, "dead member", nil},
		{"longest dead goes first", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(4, "10.0.0.4"), down(3, "10.0.0.3", time.Hour), down(5, "10.0.0.5", 2*time.Hour)}, 5, StepRemove, 5, "dead member", nil},
		{"removal would lose quorum", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(6, "10.0.0.6"), down(3, "10.0.0.3", time.Hour), down(4, "10.0.0.4", time.Hour), down(5, "10.0.0.5", time.Hour)}, 5, StepStandby, 0, "no quorum", nil},
		{"no quorum at all", []ClusterMember{up(1, "10.0.0.1"), down(2, "10.0.0.2", time.Hour), down(3, "10.0.0.3", time.Hour)}, 3, StepStandby, 0, "no quorum", nil},
		{"past self: remove", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), pastSelf}, 3, StepRemove, 9, "past self", nil},
		{"interrupted join: resume", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(3, "10.0.0.3"), unstartedSelf}, 3, StepResume, 0, "interrupted join", nil},
		{"founder that never started is a past self too", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), foundingSelf}, 3, StepRemove, 9, "past self", nil},
		{"healthy past self is never removed", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), voter(9, "10.0.0.9", true, 0)}, 3, StepStandby, 0, "answers", nil},
		{"past self whose removal loses quorum", []ClusterMember{up(1, "10.0.0.1"), down(2, "10.0.0.2", time.Hour), pastSelf}, 3, StepStandby, 0, "no quorum", nil},
		{"started past learner: remove", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(3, "10.0.0.3"), pastLearner}, 3, StepRemove, 9, "past self", nil},
		{"dead but measured below the grace: standby", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), down(3, "10.0.0.3", grace-time.Second)}, 3, StepStandby, 0, "removed after", nil},
		{"another learner joining", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), otherLearner(true, 0)}, 3, StepStandby, 0, "one membership change at a time", nil},
		{"stale learner removed", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), otherLearner(false, time.Hour)}, 3, StepRemove, 7, "stale learner", nil},
		{"full, a voter offers its seat: join beyond the size", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(3, "10.0.0.3")}, 3, StepAdd, 0, "take its seat before it leaves", []uint64{2}},
		{"the offered seat is taken already (4 voters): standby", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(3, "10.0.0.3"), up(4, "10.0.0.4")}, 3, StepStandby, 0, "4/3 voters", []uint64{2}},
		{"offer by a member that is gone counts for nothing", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(3, "10.0.0.3")}, 3, StepStandby, 0, "all healthy", []uint64{8}},
		{"offer while a voter is down: no growth", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), down(3, "10.0.0.3", time.Minute)}, 3, StepStandby, 0, "removed after", []uint64{2}},
		{"offer while the replacement's learner joins: one at a time", []ClusterMember{up(1, "10.0.0.1"), up(2, "10.0.0.2"), up(3, "10.0.0.3"), otherLearner(true, 0)}, 3, StepStandby, 0, "one membership change at a time", []uint64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanJoin(JoinFacts{SelfPeerURL: selfURL, Members: tt.members, DesiredSize: tt.size, Grace: grace, Handovers: tt.handovers})
			if got.Kind != tt.want {
				t.Fatalf("kind = %s (%s), want %s", got.Kind, got.Reason, tt.want)
			}
			if tt.remove != 0 && (got.Remove == nil || got.Remove.ID != tt.remove) {
				t.Fatalf("remove = %+v, want %x", got.Remove, tt.remove)
			}
			if got.Kind != StepRemove && got.Remove != nil {
				t.Fatalf("%s step carries a removal %+v", got.Kind, got.Remove)
			}
			if !strings.Contains(got.Reason+" "+removalReason(got), tt.reason) {
				t.Fatalf("reason %q does not mention %q", got.Reason, tt.reason)
			}
			for _, m := range tt.members {
				if got.Remove != nil && got.Remove.ID == m.ID && m.Healthy {
					t.Fatalf("planned removal of healthy member %s", m.Name)
				}
			}
		})
	}
}

func removalReason(s JoinStep) string {
	if s.Remove == nil {
		return ""
	}
	return s.Remove.Reason
}

func TestLeaveCheck(t *testing.T) {
	three := []ClusterMember{voter(1, "10.0.0.1", true, 0), voter(2, "10.0.0.2", true, 0), voter(3, "10.0.0.3", true, 0)}
	if err := LeaveCheck(1, three); err != nil {
		t.Errorf("healthy 3-node leave: %v", err)
	}
	degraded := []ClusterMember{voter(1, "10.0.0.1", true, 0), voter(2, "10.0.0.2", true, 0), voter(3, "10.0.0.3", false, time.Hour)}
	if err := LeaveCheck(1, degraded); err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Errorf("leave with a dead peer: %v", err)
	}
	if err := LeaveCheck(1, three[:1]); err == nil || !strings.Contains(err.Error(), "last voter") {
		t.Errorf("last voter: %v", err)
	}
	if err := LeaveCheck(42, three); err == nil || !strings.Contains(err.Error(), "not in the cluster") {
		t.Errorf("unknown member: %v", err)
	}
}

// TestPlanAbandon: a learner gives itself up only while the member list
// still holds it as a learner.
func TestPlanAbandon(t *testing.T) {
	learner := voter(9, "10.0.0.9", true, 0)
	learner.IsLearner = true
	others := []ClusterMember{voter(1, "10.0.0.1", true, 0), voter(2, "10.0.0.2", true, 0)}
	for _, tc := range []struct {
		name    string
		members []ClusterMember
		want    AbandonKind
	}{
		{"still a learner", append(others, learner), AbandonRemove},
		{"promoted meanwhile", append(others, voter(9, "10.0.0.9", true, 0)), AbandonKeep},
		{"removed by another node", others, AbandonGone},
		{"another learner with my address", append(others, func() ClusterMember { m := learner; m.ID = 8; return m }()), AbandonGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, why := PlanAbandon(9, tc.members); got != tc.want {
				t.Errorf("PlanAbandon = %s (%s), want %s", got, why, tc.want)
			}
		})
	}
}

// TestKeepVoters: make-before-break's guard, checked under the lock on the
// survey taken just before the removal.
func TestKeepVoters(t *testing.T) {
	up := func(id uint64, ip string) ClusterMember { return voter(id, ip, true, 0) }
	down := func(id uint64, ip string) ClusterMember { return voter(id, ip, false, time.Minute) }
	learner := up(5, "10.0.0.5")
	learner.IsLearner = true
	self := up(1, "10.0.0.1")
	selfLearner := self
	selfLearner.IsLearner = true
	for _, tc := range []struct {
		name    string
		members []ClusterMember
		keep    int
		refusal string // "" : allowed
	}{
		{"replacement promoted, 4 healthy voters: leave", []ClusterMember{self, up(2, "10.0.0.2"), up(3, "10.0.0.3"), up(4, "10.0.0.4")}, 3, ""},
		{"5 voters, two replacements promoted: leave", []ClusterMember{self, up(2, "10.0.0.2"), up(3, "10.0.0.3"), up(4, "10.0.0.4"), up(6, "10.0.0.6")}, 3, ""},
		{"the other terminated member left first: 3 voters, wait", []ClusterMember{self, up(3, "10.0.0.3"), up(4, "10.0.0.4")}, 3,
			"would leave 2 voters, fewer than cluster.size 3 (another member left first)"},
		{"a learner counts for nothing", []ClusterMember{self, up(3, "10.0.0.3"), up(4, "10.0.0.4"), learner}, 3, "would leave 2 voters"},
		{"4 voters, one down: wait", []ClusterMember{self, up(2, "10.0.0.2"), down(3, "10.0.0.3"), up(4, "10.0.0.4")}, 3,
			"etcd-10.0.0.3 not healthy"},
		{"5-node cluster, 6 voters: leave", []ClusterMember{self, up(2, "10.0.0.2"), up(3, "10.0.0.3"), up(4, "10.0.0.4"), up(6, "10.0.0.6"), up(7, "10.0.0.7")}, 5, ""},
		{"5-node cluster, the other left first: wait", []ClusterMember{self, up(2, "10.0.0.2"), up(3, "10.0.0.3"), up(4, "10.0.0.4"), up(6, "10.0.0.6")}, 5,
			"would leave 4 voters, fewer than cluster.size 5"},
		{"self a learner: nothing to keep", []ClusterMember{selfLearner, up(3, "10.0.0.3"), up(4, "10.0.0.4")}, 3, ""},
		{"self gone", []ClusterMember{up(2, "10.0.0.2"), up(3, "10.0.0.3"), up(4, "10.0.0.4")}, 3, "not in the cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := KeepVoters(tc.keep)(1, tc.members)
			switch {
			case tc.refusal == "" && err != nil:
				t.Errorf("KeepVoters(%d) = %v, want the leave allowed", tc.keep, err)
			case tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal)):
				t.Errorf("KeepVoters(%d) = %v, want a refusal containing %q", tc.keep, err, tc.refusal)
			}
		})
	}
}

// TestLeaveAllowed: Leave's check under the lock. The quorum comes first
// and is a refusal; the guard's refusal is a *DeferredError (a wait).
func TestLeaveAllowed(t *testing.T) {
	up := func(id uint64, ip string) ClusterMember { return voter(id, ip, true, 0) }
	three := []ClusterMember{up(1, "10.0.0.1"), up(3, "10.0.0.3"), up(4, "10.0.0.4")}
	if err := leaveAllowed(1, three, nil); err != nil {
		t.Errorf("no guard, quorum kept: %v, want allowed (the rule of etcd-agent leave, scale-in and spot notices)", err)
	}
	err := leaveAllowed(1, three, KeepVoters(3))
	var d *DeferredError
	if !errors.As(err, &d) || !strings.Contains(err.Error(), "leave deferred: removing") {
		t.Errorf("guard refuses: %v, want a *DeferredError", err)
	}
	oneDown := []ClusterMember{up(1, "10.0.0.1"), up(3, "10.0.0.3"), voter(4, "10.0.0.4", false, time.Minute)}
	err = leaveAllowed(1, oneDown, KeepVoters(3))
	if errors.As(err, &d) || err == nil || !strings.Contains(err.Error(), "leave: refused") {
		t.Errorf("quorum at stake: %v, want the quorum refusal, not a deferral", err)
	}
}
