// Package fleetlock coordinates the nodes' OS reboots with etcd's own
// state. The agent serves the FleetLock protocol (coreos/airlock's
// docs/protocol-specs.md) to its node's Zincati on loopback (server.go):
// `pre-reboot` asks for a reboot slot, `steady-state` gives it back. The
// slots live in the cluster itself (keys.FleetLockPrefix, store.go), taken
// and freed by transactions, so two agents never hand out one slot.
//
// Unlike a plain semaphore (airlock), a slot is granted only when the
// cluster can lose this member (PreReboot, a pure function over Facts):
// every other voter healthy and caught up, no alarm, no membership change,
// defragmentation, rolling change or recovery in progress, and the voters
// left without this member and every other holder still a quorum. Before
// granting, the agent moves leadership away and takes the snapshot it takes
// before every membership change (job.go). A slot is given back only once
// the member is a healthy, caught-up voter again, and a holder that is gone
// (its member removed, replaced, or down longer than the dead-member grace)
// loses its slot by itself (Ghosts, run by every agent's job).
package fleetlock

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/refusal"
)

// Kinds of refusal: the "kind" of a FleetLock error body, what Zincati logs.
const (
	// Protocol errors (the request itself is wrong).
	KindBadHeader     = "bad_header"
	KindBadBody       = "bad_body"
	KindBadMethod     = "method_not_allowed"
	KindNotFound      = "not_found"
	KindEtcdNotReady  = "etcd_not_ready"
	KindUnavailable   = "cluster_unavailable"
	KindNotAMember    = "not_a_member"
	KindChange        = "change_in_progress"
	KindRecovery      = "recovery_in_progress"
	KindLearner       = "learner_joining"
	KindAlarm         = "alarm_raised"
	KindRolling       = "rolling_change"
	KindSlotTaken     = "slot_taken"
	KindUnhealthy     = "member_unhealthy"
	KindBehind        = "member_behind"
	KindNoTolerance   = "no_fault_tolerance"
	KindBelowSize     = "cluster_below_size"
	KindNotReady      = "member_not_ready"
	KindLeaderMove    = "leader_not_moved"
	KindSlotChanged   = "slot_changed"
	KindInternalError = "internal_error"
)

// Client is who asks: Zincati's client_params.
type Client struct {
	// ID is the node's Zincati ID (an app-specific machine ID).
	ID string `json:"id"`
	// Group is the node's Zincati group ("default" unless configured).
	Group string `json:"group"`
}

// Holder is one slot's holder, as stored in the cluster (JSON).
type Holder struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	// Member, MemberID (hex) and PeerURL are the holder node's etcd member
	// when the slot was granted: how a gone holder is found.
	Member   string    `json:"member"`
	MemberID string    `json:"member_id"`
	PeerURL  string    `json:"peer_url"`
	Since    time.Time `json:"since"`

	// Slot is the slot number in the group, Key the slot's key and
	// ModRevision the revision a free must compare against (not stored).
	Slot        int    `json:"-"`
	Key         string `json:"-"`
	ModRevision int64  `json:"-"`
}

// Member is one member as the survey under the membership lock saw it.
type Member struct {
	ID      uint64
	Name    string
	PeerURL string
	Learner bool
	// Healthy: it answered its status query; CaughtUp: it has applied what
	// the leader had committed.
	Healthy, CaughtUp bool
	// Version is the etcd version it runs ("" when it did not answer).
	Version string
}

func (m Member) label() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x", m.ID)
}

// Facts is what the agent knows when its Zincati asks for a slot.
type Facts struct {
	Client Client
	// Self is the local member's ID (0: this node is not a member).
	Self uint64
	// LockTaken: this agent holds the membership lock (a membership change,
	// defragmentation or rolling restart holds it otherwise).
	LockTaken bool
	// LockHolder says who held the lock when it could not be taken.
	LockHolder string
	Members    []Member
	// Alarms are the raised alarms ("NOSPACE on etcd-10-0-1-5").
	Alarms []string
	// AlarmsErr says why the alarm list could not be read ("" when it was).
	AlarmsErr string
	// Recovery describes a recovery of the cluster that is not finished
	// ("" when none).
	Recovery string
	// Size is the configured number of voters (cluster.size).
	Size int
	// Holders are every group's slot holders; Slots the requester's group's
	// slot count.
	Holders []Holder
	Slots   int
	// Window is the maintenance window (nil: none), Now the node's clock.
	Window *Window
	Now    time.Time
}

// Decision is the answer to pre-reboot or steady-state.
type Decision struct {
	Grant bool
	// Held: the requester already holds its slot (pre-reboot granted again,
	// nothing new taken) or, for steady-state, holds one to give back.
	Held bool
	// Kind and Reason are a refusal's (Kind "" when granted).
	Kind   string
	Reason string
}

func refuse(kind, format string, args ...any) Decision {
	return Decision{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// HeldBy is the requester's slot, if it holds one.
func HeldBy(holders []Holder, id string) (Holder, bool) {
	i := slices.IndexFunc(holders, func(h Holder) bool { return h.ID == id })
	if i < 0 {
		return Holder{}, false
	}
	return holders[i], true
}

// PreReboot decides whether the requester may reboot now. It is granted
// only inside the maintenance window, if one is set, and when the cluster
// can lose this member: every other slot holder is
// counted as down already, every other voter must be healthy and caught up,
// and the voters left must still be a quorum. It is re-entrant: a holder
// asking again is granted again.
func PreReboot(f Facts) Decision {
	if h, ok := HeldBy(f.Holders, f.Client.ID); ok {
		return Decision{Grant: true, Held: true, Reason: fmt.Sprintf("%s already holds slot %d of group %q since %s", f.Client.ID, h.Slot, h.Group, h.Since.UTC().Format(time.RFC3339))}
	}
	if d, ok := OutsideWindow(f.Window, f.Now); ok {
		return d
	}
	if !f.LockTaken {
		who := ""
		if f.LockHolder != "" {
			who = " (" + f.LockHolder + ")"
		}
		return refuse(KindChange, "the membership lock is held%s: a membership change, defragmentation, rolling restart or another node's reboot grant is in progress", who)
	}
	self := slices.IndexFunc(f.Members, func(m Member) bool { return m.ID == f.Self })
	if f.Self == 0 || self < 0 {
		return refuse(KindNotAMember, "this node's etcd member is not in the member list")
	}
	if f.Members[self].Learner {
		return refuse(KindLearner, "this node's member %s is still a learner: it reboots once it is a voter", f.Members[self].label())
	}
	if f.Recovery != "" {
		return refuse(KindRecovery, "a recovery of the cluster is in progress: %s", f.Recovery)
	}
	var learners []string
	for _, m := range f.Members {
		if m.Learner {
			learners = append(learners, m.label())
		}
	}
	if len(learners) > 0 {
		return refuse(KindLearner, "a member is joining (learner %s): no reboot until it is a voter", strings.Join(learners, ", "))
	}
	if f.AlarmsErr != "" {
		return refuse(KindAlarm, "the alarm list could not be read (%s)", f.AlarmsErr)
	}
	if len(f.Alarms) > 0 {
		return refuse(KindAlarm, "alarm raised: %s", strings.Join(f.Alarms, ", "))
	}
	voters := slices.DeleteFunc(slices.Clone(f.Members), func(m Member) bool { return m.Learner })
	if len(voters) < f.Size {
		return refuse(KindBelowSize, "the cluster has %d of its %d voters: a member is missing or being replaced", len(voters), f.Size)
	}
	versions := map[string]bool{}
	for _, m := range voters {
		if m.Version != "" {
			versions[m.Version] = true
		}
	}
	if len(versions) > 1 {
		vs := make([]string, 0, len(versions))
		for v := range versions {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		return refuse(KindRolling, "the voters run different etcd versions (%s): a rolling change is in progress", strings.Join(vs, ", "))
	}
	var inGroup []string
	holding := map[string]bool{} // peer URLs of other holders' members
	for _, h := range f.Holders {
		holding[h.PeerURL] = true
		if h.Group == f.Client.Group {
			inGroup = append(inGroup, fmt.Sprintf("%s (%s) since %s", h.ID, h.Member, h.Since.UTC().Format(time.RFC3339)))
		}
	}
	if len(inGroup) >= f.Slots {
		return refuse(KindSlotTaken, "group %q has %d slot(s), held by %s", f.Client.Group, f.Slots, strings.Join(inGroup, ", "))
	}
	left := 0
	for _, m := range voters {
		switch {
		case m.ID == f.Self:
			continue
		case holding[m.PeerURL]:
			continue // counted as down: it may reboot at any moment
		case !m.Healthy:
			return refuse(KindUnhealthy, "voter %s does not answer: the cluster cannot lose another member", m.label())
		case !m.CaughtUp:
			return refuse(KindBehind, "voter %s is behind the leader: the cluster cannot lose another member until it caught up", m.label())
		}
		left++
	}
	if quorum := len(voters)/2 + 1; left < quorum {
		others := len(voters) - 1 - left
		return refuse(KindNoTolerance, "without this member (and %d other slot holder(s)) %d of %d voters would be left, fewer than the quorum of %d",
			others, left, len(voters), quorum)
	}
	return Decision{Grant: true, Reason: fmt.Sprintf("%d of %d voters stay healthy and caught up without %s", left, len(voters), f.Members[self].label())}
}

// SteadyState decides whether the requester's slot may be given back: only
// once its member is a healthy, caught-up voter again. Holding no slot is
// steady already (Zincati asks at every start).
func SteadyState(holders []Holder, id string, localReady bool, localState string) Decision {
	h, ok := HeldBy(holders, id)
	if !ok {
		return Decision{Grant: true, Reason: id + " holds no slot"}
	}
	if !localReady {
		return Decision{Held: true, Kind: KindNotReady, Reason: fmt.Sprintf("the member is not a healthy, caught-up voter yet (%s): slot %d of group %q is kept until it is", localState, h.Slot, h.Group)}
	}
	return Decision{Grant: true, Held: true, Reason: fmt.Sprintf("the member is a healthy, caught-up voter again: slot %d of group %q freed", h.Slot, h.Group)}
}

// Ghost is a slot to free: its holder is gone.
type Ghost struct {
	Holder Holder
	Reason string
}

// Ghosts are the holders that lose their slot: the member recorded with the
// slot is no longer in the member list (removed; replaced when another
// member has its peer URL now), or this agent has seen it down for at least
// grace (downFor, by member ID in hex; absent when it answers).
func Ghosts(holders []Holder, members []Member, downFor map[string]time.Duration, grace time.Duration) []Ghost {
	var out []Ghost
	for _, h := range holders {
		i := slices.IndexFunc(members, func(m Member) bool { return fmt.Sprintf("%x", m.ID) == h.MemberID })
		if i < 0 {
			why := fmt.Sprintf("its member %s (%s) was removed", h.Member, h.MemberID)
			if j := slices.IndexFunc(members, func(m Member) bool { return h.PeerURL != "" && m.PeerURL == h.PeerURL }); j >= 0 {
				why = fmt.Sprintf("its member %s (%s) was replaced by member %x", h.Member, h.MemberID, members[j].ID)
			}
			out = append(out, Ghost{Holder: h, Reason: why})
			continue
		}
		if d, ok := downFor[h.MemberID]; ok && d >= grace {
			out = append(out, Ghost{Holder: h, Reason: fmt.Sprintf("its member %s has been down for %s (cluster.deadMemberGrace %s)", h.Member, d.Round(time.Second), grace)})
		}
	}
	return out
}

// ManualRelease decides whether `etcd-agent fleetlock release` may free h
// by hand: not while its holder is still rebooting (its member in the list
// but not a healthy, caught-up voter), unless forced.
func ManualRelease(h Holder, members []Member, force bool) error {
	if force {
		return nil
	}
	i := slices.IndexFunc(members, func(m Member) bool { return fmt.Sprintf("%x", m.ID) == h.MemberID })
	if i < 0 {
		return nil // removed: nothing reboots
	}
	m := members[i]
	if m.Healthy && m.CaughtUp && !m.Learner {
		return nil
	}
	return refusal.Errorf("%s (member %s) still holds slot %d of group %q and is rebooting (its member is not a healthy, caught-up voter): "+
		"freeing it now could let another node reboot while this one is down; wait for its steady-state, or use --force if the node is gone for good",
		h.ID, h.Member, h.Slot, h.Group)
}
