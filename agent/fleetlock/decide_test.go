package fleetlock

import (
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/refusal"
)

var t0 = time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)

// three is a healthy 3-voter cluster; member i has ID i and peer URL pi.
func three() []Member {
	return []Member{
		{ID: 1, Name: "n1", PeerURL: "p1", Healthy: true, CaughtUp: true, Version: "3.7.3"},
		{ID: 2, Name: "n2", PeerURL: "p2", Healthy: true, CaughtUp: true, Version: "3.7.3"},
		{ID: 3, Name: "n3", PeerURL: "p3", Healthy: true, CaughtUp: true, Version: "3.7.3"},
	}
}

func holder(id, group string, member uint64) Holder {
	return Holder{ID: id, Group: group, Member: "n" + string(rune('0'+member)), MemberID: string(rune('0' + member)), PeerURL: "p" + string(rune('0'+member)), Since: t0}
}

func TestPreReboot(t *testing.T) {
	base := func() Facts {
		return Facts{Client: Client{ID: "z1", Group: "default"}, Self: 1, LockTaken: true, Members: three(), Size: 3, Slots: 1}
	}
	five := func() []Member {
		ms := three()
		ms = append(ms, Member{ID: 4, Name: "n4", PeerURL: "p4", Healthy: true, CaughtUp: true}, Member{ID: 5, Name: "n5", PeerURL: "p5", Healthy: true, CaughtUp: true})
		return ms
	}
	for _, tc := range []struct {
		name  string
		edit  func(f *Facts)
		grant bool
		held  bool
		kind  string
		want  string // in the reason
	}{
		{name: "healthy cluster, free slot", edit: func(*Facts) {}, grant: true, want: "2 of 3 voters stay healthy"},
		{name: "re-entrant for the same holder, whatever else", edit: func(f *Facts) {
			f.Holders = []Holder{holder("z1", "default", 1)}
			f.LockTaken = false
			f.Members[1].Healthy = false
		}, grant: true, held: true, want: "already holds slot"},
		{name: "membership lock held", edit: func(f *Facts) { f.LockTaken = false; f.LockHolder = "timed out" }, kind: KindChange, want: "membership lock is held (timed out)"},
		{name: "not a member", edit: func(f *Facts) { f.Self = 9 }, kind: KindNotAMember},
		{name: "self is a learner", edit: func(f *Facts) { f.Members[0].Learner = true }, kind: KindLearner, want: "still a learner"},
		{name: "another member joins as a learner", edit: func(f *Facts) {
			f.Members = append(f.Members, Member{ID: 4, Name: "n4", Learner: true})
		}, kind: KindLearner, want: "learner n4"},
		{name: "recovery in progress", edit: func(f *Facts) { f.Recovery = "recovery 2 by n2" }, kind: KindRecovery},
		{name: "alarm raised", edit: func(f *Facts) { f.Alarms = []string{"NOSPACE on n2"} }, kind: KindAlarm, want: "NOSPACE on n2"},
		{name: "alarm list unreadable", edit: func(f *Facts) { f.AlarmsErr = "no answer in time" }, kind: KindAlarm},
		{name: "below the configured size", edit: func(f *Facts) { f.Members = f.Members[:2] }, kind: KindBelowSize, want: "2 of its 3 voters"},
		{name: "rolling change: versions differ", edit: func(f *Facts) { f.Members[2].Version = "3.6.16" }, kind: KindRolling, want: "3.6.16, 3.7.3"},
		{name: "another node holds the group's slot", edit: func(f *Facts) { f.Holders = []Holder{holder("z2", "default", 2)} }, kind: KindSlotTaken, want: "held by z2 (n2)"},
		{name: "another group's holder still counts as down", edit: func(f *Facts) { f.Holders = []Holder{holder("z2", "workers", 2)} },
			kind: KindNoTolerance, want: "1 of 3 voters would be left"},
		{name: "another voter down", edit: func(f *Facts) { f.Members[2].Healthy = false }, kind: KindUnhealthy, want: "voter n3 does not answer"},
		{name: "another voter behind", edit: func(f *Facts) { f.Members[1].CaughtUp = false }, kind: KindBehind, want: "voter n2 is behind"},
		{name: "a single-voter cluster cannot lose its member", edit: func(f *Facts) { f.Members = f.Members[:1]; f.Size = 1 }, kind: KindNoTolerance, want: "0 of 1 voters"},
		{name: "two voters cannot lose one", edit: func(f *Facts) { f.Members = f.Members[:2]; f.Size = 2 }, kind: KindNoTolerance},
		{name: "five voters, two slots: a second holder is granted", edit: func(f *Facts) {
			f.Members, f.Size, f.Slots = five(), 5, 2
			f.Holders = []Holder{holder("z2", "default", 2)}
		}, grant: true, want: "3 of 5 voters"},
		{name: "five voters, two slots: not a third", edit: func(f *Facts) {
			f.Members, f.Size, f.Slots = five(), 5, 3
			f.Holders = []Holder{holder("z2", "default", 2), holder("z3", "default", 3)}
		}, kind: KindNoTolerance, want: "2 other slot holder(s)) 2 of 5"},
		{name: "five voters, one slot: taken", edit: func(f *Facts) {
			f.Members, f.Size = five(), 5
			f.Holders = []Holder{holder("z2", "default", 2)}
		}, kind: KindSlotTaken},
		{name: "a holder that is down does not block the next check", edit: func(f *Facts) {
			f.Members, f.Size, f.Slots = five(), 5, 2
			f.Members[1].Healthy = false
			f.Holders = []Holder{holder("z2", "default", 2)}
		}, grant: true},
		// t0 is Saturday 06:00 UTC.
		{name: "outside the maintenance window, whatever else", edit: func(f *Facts) {
			f.Window, f.Now = &Window{Days: days(time.Sunday), Start: 22 * time.Hour, Length: time.Hour}, t0
			f.LockTaken = false
		}, kind: KindOutsideWindow, want: "next window opens at 2026-12-06T22:00:00Z"},
		{name: "inside the maintenance window", edit: func(f *Facts) {
			f.Window, f.Now = &Window{Days: days(time.Saturday), Start: 5 * time.Hour, Length: 2 * time.Hour}, t0
		}, grant: true, want: "2 of 3 voters stay healthy"},
		{name: "a holder asking again after its window closed", edit: func(f *Facts) {
			f.Window, f.Now = &Window{Days: days(time.Friday), Start: 22 * time.Hour, Length: time.Hour}, t0
			f.Holders = []Holder{holder("z1", "default", 1)}
		}, grant: true, held: true, want: "already holds slot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.edit(&f)
			d := PreReboot(f)
			if d.Grant != tc.grant || d.Held != tc.held || d.Kind != tc.kind || !strings.Contains(d.Reason, tc.want) {
				t.Errorf("PreReboot = %+v; want grant %v held %v kind %q reason containing %q", d, tc.grant, tc.held, tc.kind, tc.want)
			}
			if !d.Grant && d.Kind == "" {
				t.Error("a refusal without a kind")
			}
		})
	}
}

func TestSteadyState(t *testing.T) {
	hs := []Holder{holder("z1", "default", 1)}
	for _, tc := range []struct {
		name        string
		holders     []Holder
		ready       bool
		grant, held bool
		kind        string
	}{
		{name: "no slot held: steady already", ready: false, grant: true},
		{name: "held, member not ready: kept", holders: hs, ready: false, held: true, kind: KindNotReady},
		{name: "held, member ready: freed", holders: hs, ready: true, grant: true, held: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := SteadyState(tc.holders, "z1", tc.ready, "learner, catching up")
			if d.Grant != tc.grant || d.Held != tc.held || d.Kind != tc.kind {
				t.Errorf("SteadyState = %+v; want grant %v held %v kind %q", d, tc.grant, tc.held, tc.kind)
			}
		})
	}
}

func TestGhosts(t *testing.T) {
	hs := []Holder{holder("z1", "default", 1)}
	grace := 10 * time.Minute
	replaced := three()
	replaced[0].ID = 9 // same peer URL p1, a new member
	for _, tc := range []struct {
		name    string
		members []Member
		downFor map[string]time.Duration
		want    string // "" for none
	}{
		{name: "member healthy", members: three()},
		{name: "down shorter than the grace: rebooting", members: three(), downFor: map[string]time.Duration{"1": grace - time.Second}},
		{name: "down for the grace", members: three(), downFor: map[string]time.Duration{"1": grace}, want: "down for 10m0s"},
		{name: "removed", members: three()[1:], want: "was removed"},
		{name: "replaced", members: replaced, want: "replaced by member 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Ghosts(hs, tc.members, tc.downFor, grace)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("Ghosts = %+v, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0].Reason, tc.want)):
				t.Errorf("Ghosts = %+v, want one saying %q", got, tc.want)
			}
		})
	}
}

func TestManualRelease(t *testing.T) {
	h := holder("z1", "default", 1)
	down := three()
	down[0].Healthy = false
	if err := ManualRelease(h, down, false); !refusal.Is(err) || !strings.Contains(err.Error(), "is rebooting") {
		t.Errorf("holder down, not forced: %v, want a refusal saying it is rebooting", err)
	}
	if err := ManualRelease(h, down, true); err != nil {
		t.Errorf("holder down, forced: %v", err)
	}
	if err := ManualRelease(h, three(), false); err != nil {
		t.Errorf("holder back and caught up: %v", err)
	}
	if err := ManualRelease(h, three()[1:], false); err != nil {
		t.Errorf("holder's member removed: %v", err)
	}
}
