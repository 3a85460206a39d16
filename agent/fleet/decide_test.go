package fleet

import (
	"strings"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/membership"
)

func voter(id uint64, healthy bool) membership.ClusterMember {
	return membership.ClusterMember{ID: id, Name: "n" + string(rune('0'+id)), Healthy: healthy}
}

func learner(id uint64) membership.ClusterMember {
	m := voter(id, true)
	m.IsLearner = true
	return m
}

func TestDecide(t *testing.T) {
	spot := Notice{Kind: NoticeSpot, Detail: "spot"}
	term := Notice{Kind: NoticeTerminate, Detail: "terminate"}
	rebalance := Notice{Kind: NoticeRebalance, Detail: "rebalance"}
	all3 := []membership.ClusterMember{voter(1, true), voter(2, true), voter(3, true)}
	oneDown := []membership.ClusterMember{voter(1, true), voter(2, true), voter(3, false)}
	for _, tc := range []struct {
		name string
		f    Facts
		want Plan
		// stay is a substring of Plan.Stay (want.Stay is ignored).
		stay string
	}{
		{name: "no notice, nothing configured", f: Facts{}, want: Plan{}},
		{name: "spot, 3 healthy voters: leave", f: Facts{Notice: spot, Surveyed: true, SelfID: 1, Members: all3}, want: Plan{Leave: true}},
		{name: "rebalance, 3 healthy voters: leave", f: Facts{Notice: rebalance, Surveyed: true, SelfID: 1, Members: all3}, want: Plan{Leave: true}},
		{name: "spot, 3 voters one already down: stay", f: Facts{Notice: spot, Surveyed: true, SelfID: 1, Members: oneDown},
			stay: "would leave 1 healthy of 2 voters"},
		{name: "spot on the down member's peer: the down one is another; 5 voters, one down: leave",
			f:    Facts{Notice: spot, Surveyed: true, SelfID: 1, Members: append(oneDown[:3:3], voter(4, true), voter(5, true))},
			want: Plan{Leave: true}},
		{name: "spot on the last voter: stay", f: Facts{Notice: spot, Surveyed: true, SelfID: 1, Members: []membership.ClusterMember{voter(1, true)}},
			stay: "last voter"},
		{name: "spot on a learner: leave (not a voter)", f: Facts{Notice: spot, Surveyed: true, SelfID: 4, Members: append(oneDown[:3:3], learner(4))},
			want: Plan{Leave: true}},
		{name: "spot, survey failed: stay", f: Facts{Notice: spot, SurveyError: "no member answers"}, stay: "cannot survey the cluster: no member answers"},
		{name: "spot, not a member: stay, nothing to leave", f: Facts{Notice: spot, Surveyed: true, Members: all3}, stay: "not a member"},
		{name: "terminate, not a member: terminate hook continues", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, Members: all3},
			want: Plan{Terminate: HookContinue}, stay: "not a member"},
		{name: "terminate with hook, quorum kept: leave and heartbeat", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 2, Members: all3},
			want: Plan{Leave: true, Terminate: HookHeartbeat}},
		{name: "terminate with hook, quorum at stake: stay and heartbeat", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 1, Members: oneDown},
			want: Plan{Terminate: HookHeartbeat}, stay: "break quorum"},
		{name: "terminate with hook, left: continue", f: Facts{Notice: term, TerminateHook: true, Left: true}, want: Plan{Terminate: HookContinue}},
		{name: "spot with a terminate hook: the hook is not pending, no call", f: Facts{Notice: spot, TerminateHook: true, Surveyed: true, SelfID: 1, Members: all3},
			want: Plan{Leave: true}},
		{name: "interrupted leave: finished whatever the survey", f: Facts{Notice: spot, Leaving: true}, want: Plan{Leave: true}},
		{name: "leave in progress without a notice (etcd-agent leave's own): not run twice", f: Facts{Leaving: true}, want: Plan{}},
		{name: "left, no notice: nothing", f: Facts{Left: true}, want: Plan{}},
		{name: "launch hook, not ready: heartbeat", f: Facts{LaunchHook: true}, want: Plan{Launch: HookHeartbeat}},
		{name: "launch hook, ready: continue", f: Facts{LaunchHook: true, Ready: true}, want: Plan{Launch: HookContinue}},
		{name: "launch hook, standby (cluster full): continue", f: Facts{LaunchHook: true, Standby: true}, want: Plan{Launch: HookContinue}},
		{name: "launch hook on a node that left: continue (nothing will be ready)", f: Facts{LaunchHook: true, Left: true}, want: Plan{Launch: HookContinue}},

		// Make-before-break (DesiredSize set: a terminate hook holds the instance).
		{name: "terminated, 3/3 voters, window open: offer the seat and wait", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 1, Members: all3, DesiredSize: 3, ReplacementWindow: true},
			want: Plan{OfferSeat: true, Terminate: HookHeartbeat}},
		{name: "terminated, replacement is a learner: wait, even past the window", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 1, Members: append(all3[:3:3], learner(4)), DesiredSize: 3},
			want: Plan{OfferSeat: true, Terminate: HookHeartbeat}},
		{name: "terminated, replacement promoted (4/4 healthy voters): leave, keeping 3 voters under the lock", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 1, Members: append(all3[:3:3], voter(4, true)), DesiredSize: 3, ReplacementWindow: true},
			want: Plan{Leave: true, KeepVoters: 3, Terminate: HookHeartbeat}},
		{name: "terminated, window over, replacement promoted: still keeps 3 voters under the lock", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 1, Members: append(all3[:3:3], voter(4, true)), DesiredSize: 3},
			want: Plan{Leave: true, KeepVoters: 3, Terminate: HookHeartbeat}},
		{name: "two terminated at once, both replacements promoted (5 voters): leave, keeping 3", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 2, Members: append(all3[:3:3], voter(4, true), voter(5, true)), DesiredSize: 3, ReplacementWindow: true},
			want: Plan{Leave: true, KeepVoters: 3, Terminate: HookHeartbeat}},
		{name: "two terminated at once, the other left first (3/3 voters): offer the seat again", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 2, Members: []membership.ClusterMember{voter(2, true), voter(3, true), voter(4, true)}, DesiredSize: 3, ReplacementWindow: true},
			want: Plan{OfferSeat: true, Terminate: HookHeartbeat}},
		{name: "terminated, replacement promoted but another voter down: wait (fault tolerance first)", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 1, Members: append(oneDown[:3:3], voter(4, true)), DesiredSize: 3, ReplacementWindow: true},
			want: Plan{OfferSeat: true, Terminate: HookHeartbeat}},
		{name: "terminated, window over, no replacement: quorum-gated leave (scale-in)", f: Facts{Notice: term, TerminateHook: true, Surveyed: true, SelfID: 1, Members: all3, DesiredSize: 3},
			want: Plan{Leave: true, Terminate: HookHeartbeat}},
		{name: "spot notice never waits for a replacement", f: Facts{Notice: spot, Surveyed: true, SelfID: 1, Members: all3, DesiredSize: 3, ReplacementWindow: true},
			want: Plan{Leave: true}},
		{name: "spot notice with a surplus voter: the quorum rule alone (two minutes' notice)", f: Facts{Notice: spot, Surveyed: true, SelfID: 1, Members: append(all3[:3:3], voter(4, true)), DesiredSize: 3, ReplacementWindow: true},
			want: Plan{Leave: true}},
		{name: "terminated, 4 voters but make-before-break off (no terminate hook): the quorum rule alone", f: Facts{Notice: term, Surveyed: true, SelfID: 1, Members: append(all3[:3:3], voter(4, true))},
			want: Plan{Leave: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.f)
			if tc.stay == "" && got.Stay != "" {
				t.Errorf("Stay = %q, want none", got.Stay)
			}
			if tc.stay != "" && !strings.Contains(got.Stay, tc.stay) {
				t.Errorf("Stay = %q, want it to contain %q", got.Stay, tc.stay)
			}
			if got.OfferSeat != (got.Waiting != "") {
				t.Errorf("OfferSeat %v with Waiting %q: a wait says what for", got.OfferSeat, got.Waiting)
			}
			got.Stay, got.Waiting = "", ""
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNoticeOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Observation
		want NoticeKind
	}{
		{"nothing", Observation{LifecycleState: "InService", HasLifecycleState: true}, NoticeNone},
		{"terminated", Observation{LifecycleState: "Terminated", HasLifecycleState: true}, NoticeTerminate},
		{"spot beats terminated", Observation{LifecycleState: "Terminated", Spot: &SpotAction{Action: "terminate"}}, NoticeSpot},
		{"rebalance", Observation{Rebalance: "2026-01-01T00:00:00Z"}, NoticeRebalance},
		{"terminated beats rebalance", Observation{LifecycleState: "Terminated", Rebalance: "x"}, NoticeTerminate},
		{"warmed pool state is no notice", Observation{LifecycleState: "Warmed:Stopped"}, NoticeNone},
	} {
		if got := NoticeOf(tc.o).Kind; got != tc.want {
			t.Errorf("%s: NoticeOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}
