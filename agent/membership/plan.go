package membership

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ClusterMember is one member of a formed cluster as a joining node sees it.
type ClusterMember struct {
	ID         uint64
	Name       string // empty until the member has started once
	PeerURLs   []string
	ClientURLs []string // empty until the member has started once
	IsLearner  bool
	// Healthy: the member answered a status query just now.
	Healthy bool
	// DownFor is how long this node itself has seen the member fail its
	// probes without a break (Outage.Down, from TrackOutages). Zero when
	// Healthy.
	DownFor time.Duration
}

// started reports whether the member has ever run: etcd publishes a
// member's name and client URLs when it first starts.
func (m ClusterMember) started() bool { return len(m.ClientURLs) > 0 }

func (m ClusterMember) label() string {
	if m.Name != "" {
		return m.Name
	}
	if len(m.PeerURLs) > 0 {
		return m.PeerURLs[0]
	}
	return fmt.Sprintf("%x", m.ID)
}

// JoinFacts is what a node with no data knows about a formed cluster,
// gathered while it holds the cluster's membership lock.
type JoinFacts struct {
	// ClusterID is the ID of the cluster that answered the survey.
	ClusterID   uint64
	SelfPeerURL string
	Members     []ClusterMember
	// DesiredSize is the configured number of voting members.
	DesiredSize int
	// Grace is how long a member must be down before it may be removed.
	Grace time.Duration
	// Handovers are the members that offer their seat (EC2 is terminating
	// their instance; agent/fleet): each healthy voter among them makes
	// room for one learner beyond DesiredSize, so its replacement is a
	// voter before it leaves (make-before-break).
	Handovers []uint64
}

// StepKind is what a joining node does next.
type StepKind string

// Step kinds.
const (
	// StepResume: this node was already added as a learner (an interrupted
	// join): start etcd and finish.
	StepResume StepKind = "resume"
	// StepRemove: remove the member in Remove, then look again.
	StepRemove StepKind = "remove"
	// StepAdd: add this node as a learner.
	StepAdd StepKind = "add"
	// StepStandby: nothing may change now; wait and look again.
	StepStandby StepKind = "standby"
)

// Removal is a member to remove to make room for this node, and why.
type Removal struct {
	ID     uint64
	Name   string
	Reason string
}

// JoinStep is the planned next step with its reason, for logs and status.
type JoinStep struct {
	Kind   StepKind
	Self   uint64   // StepResume: this node's learner ID
	Remove *Removal // StepRemove
	Reason string
}

// Quorum is the number of voters a cluster of n voters needs to agree.
func Quorum(n int) int { return n/2 + 1 }

// PlanJoin decides how a node with no data enters a formed cluster. It
// never removes a healthy member, removes a down one only after the grace
// period and only when the voters left keep quorum, and lets only one
// learner exist at a time.
func PlanJoin(f JoinFacts) JoinStep {
	var voters, healthyVoters int
	var self *ClusterMember
	for i, m := range f.Members {
		if slices.Contains(m.PeerURLs, f.SelfPeerURL) {
			self = &f.Members[i]
		}
		if !m.IsLearner {
			voters++
			if m.Healthy {
				healthyVoters++
			}
		}
	}
	if healthyVoters < Quorum(voters) {
		return JoinStep{Kind: StepStandby, Reason: fmt.Sprintf(
			"cluster has no quorum (%d of %d voters healthy): no membership change is possible", healthyVoters, voters)}
	}

	if self != nil {
		if self.IsLearner && !self.started() {
			return JoinStep{Kind: StepResume, Self: self.ID,
				Reason: fmt.Sprintf("already added as learner %x by an interrupted join: starting it", self.ID)}
		}
		// A member with my peer URL, and I have no data: my past self (disk
		// lost, node replaced, or a founder that never got to start). Its
		// identity is never reused: it is removed and I join as a new member.
		if self.Healthy {
			return JoinStep{Kind: StepStandby, Reason: fmt.Sprintf(
				"member %s (%x) with this node's peer URL %s answers, but this node has no data: is another etcd running with this address? Not removing a member that answers",
				self.label(), self.ID, f.SelfPeerURL)}
		}
		if !self.IsLearner && healthyVoters < Quorum(voters-1) {
			return JoinStep{Kind: StepStandby, Reason: fmt.Sprintf(
				"my past self %s holds a voter slot, but removing it would leave %d healthy of %d voters (no quorum)",
				self.label(), healthyVoters, voters-1)}
		}
		return JoinStep{Kind: StepRemove, Remove: &Removal{ID: self.ID, Name: self.label(),
			Reason: "past self: same peer URL " + f.SelfPeerURL + ", does not answer, and its data is gone from this node"},
			Reason: fmt.Sprintf("removing my past self %s (%x) to rejoin as a new learner", self.label(), self.ID)}
	}

	// Another node's learner: a join in progress, or one interrupted for good.
	for _, m := range f.Members {
		if !m.IsLearner {
			continue
		}
		if m.Healthy || m.DownFor < f.Grace {
			return JoinStep{Kind: StepStandby, Reason: fmt.Sprintf(
				"learner %s is joining: one membership change at a time", m.label())}
		}
		return JoinStep{Kind: StepRemove, Remove: &Removal{ID: m.ID, Name: m.label(),
			Reason: fmt.Sprintf("stale learner, down for %s (grace %s)", m.DownFor.Round(time.Second), f.Grace)},
			Reason: fmt.Sprintf("removing stale learner %s", m.label())}
	}

	if voters < f.DesiredSize {
		return JoinStep{Kind: StepAdd, Reason: fmt.Sprintf(
			"cluster has %d of %d desired voters: joining as a learner", voters, f.DesiredSize)}
	}
	// A seat offered by a healthy voter that is going away: take it before
	// it leaves. Only while every voter is healthy: a cluster short of a
	// member grows no further (quorum of the larger cluster).
	var offered []string
	for _, m := range f.Members {
		if !m.IsLearner && m.Healthy && slices.Contains(f.Handovers, m.ID) {
			offered = append(offered, m.label())
		}
	}
	if len(offered) > 0 && healthyVoters == voters && voters < f.DesiredSize+len(offered) {
		return JoinStep{Kind: StepAdd, Reason: fmt.Sprintf(
			"%s is being replaced (its instance is terminating): joining as a learner to take its seat before it leaves (%d voters, %d desired)",
			strings.Join(offered, ", "), voters, f.DesiredSize)}
	}

	// At (or above) the desired size: make room only by removing a voter
	// that has been down longer than the grace period.
	var dead *ClusterMember
	var waiting []string
	for i, m := range f.Members {
		if m.IsLearner || m.Healthy {
			continue
		}
		if m.DownFor < f.Grace {
			waiting = append(waiting, fmt.Sprintf("%s down for %s", m.label(), m.DownFor.Round(time.Second)))
			continue
		}
		if dead == nil || m.DownFor > dead.DownFor {
			dead = &f.Members[i]
		}
	}
	if dead == nil {
		reason := fmt.Sprintf("standby: cluster has %d/%d voters, all healthy; waiting for a free slot", voters, f.DesiredSize)
		if len(waiting) > 0 {
			reason = fmt.Sprintf("standby: cluster has %d/%d voters; %v (removed after %s)", voters, f.DesiredSize, waiting, f.Grace)
		}
		return JoinStep{Kind: StepStandby, Reason: reason}
	}
	if healthyVoters < Quorum(voters-1) {
		return JoinStep{Kind: StepStandby, Reason: fmt.Sprintf(
			"member %s is down, but removing it would leave %d healthy of %d voters (no quorum)", dead.label(), healthyVoters, voters-1)}
	}
	return JoinStep{Kind: StepRemove, Remove: &Removal{ID: dead.ID, Name: dead.label(),
		Reason: fmt.Sprintf("down for %s (grace %s); %d healthy voters keep quorum", dead.DownFor.Round(time.Second), f.Grace, healthyVoters)},
		Reason: fmt.Sprintf("removing dead member %s to make room for this node", dead.label())}
}

// LeaveCheck says whether the member with selfID may remove itself now.
func LeaveCheck(selfID uint64, members []ClusterMember) error {
	self, others, down := othersThan(selfID, members)
	switch {
	case self == nil:
		return fmt.Errorf("member %x is not in the cluster", selfID)
	case self.IsLearner:
		return nil
	case others == 0:
		return fmt.Errorf("%s is the last voter: removing it would destroy the cluster", self.label())
	case others-len(down) < Quorum(others):
		return fmt.Errorf("removing %s would leave %d healthy of %d voters (no quorum): bring the others back first",
			self.label(), others-len(down), others)
	}
	return nil
}

// othersThan finds the member selfID (nil: not in members) and counts the
// other voters, naming those not healthy: what a removal of selfID leaves.
func othersThan(selfID uint64, members []ClusterMember) (self *ClusterMember, voters int, down []string) {
	for i, m := range members {
		switch {
		case m.ID == selfID:
			self = &members[i]
		case m.IsLearner:
		default:
			voters++
			if !m.Healthy {
				down = append(down, m.label())
			}
		}
	}
	return self, voters, down
}

// AbandonKind is what a learner that did not catch up in time does.
type AbandonKind string

// Abandon kinds.
const (
	// AbandonRemove: still this learner: remove it, then join again.
	AbandonRemove AbandonKind = "remove"
	// AbandonKeep: promoted meanwhile: a voter now, nothing to give up.
	AbandonKeep AbandonKind = "keep"
	// AbandonGone: no longer a member (another node removed the stale
	// learner): join again.
	AbandonGone AbandonKind = "gone"
)

// PlanAbandon decides, on a survey taken under the membership lock right
// before the removal, what the learner id that did not catch up in time
// does: it removes itself only while the member list still holds it as a
// learner. A voter is never removed on this path: its removal would need
// LeaveCheck's quorum check, and it is no longer behind.
func PlanAbandon(id uint64, members []ClusterMember) (AbandonKind, string) {
	for _, m := range members {
		if m.ID != id {
			continue
		}
		if !m.IsLearner {
			return AbandonKeep, fmt.Sprintf("member %x was promoted to voter meanwhile: not removing it", id)
		}
		return AbandonRemove, fmt.Sprintf("learner %x still not promoted", id)
	}
	return AbandonGone, fmt.Sprintf("learner %x is no longer a member (removed by another node)", id)
}

// ExistingCluster renders --initial-cluster for a node joining with
// --initial-cluster-state=existing: every member by name, and this node
// (still unnamed in the member list) by its own name. etcd checks that it
// matches the cluster's membership exactly.
func ExistingCluster(members []ClusterMember, self Member) string {
	var parts []string
	for _, m := range members {
		name := m.Name
		if slices.Contains(m.PeerURLs, self.PeerURL) {
			name = self.Name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

// LeaveGuard is a condition a leave must meet beyond LeaveCheck's quorum:
// Leave checks it on each survey it takes under the membership lock, so a
// check made before the lock cannot be raced by another member's leave.
// A refusal is a wait (Leave returns a *DeferredError), not a failure.
type LeaveGuard func(selfID uint64, members []ClusterMember) error

// KeepVoters is make-before-break's guard: removing selfID must leave at
// least n voters, every one of them healthy, so fault tolerance never
// drops below what cluster.size gives. Two members terminated at once
// both see "a replacement is promoted" before the lock; under it, the
// second sees the first gone and waits for another replacement.
func KeepVoters(n int) LeaveGuard {
	return func(selfID uint64, members []ClusterMember) error {
		self, voters, down := othersThan(selfID, members)
		switch {
		case self == nil:
			return fmt.Errorf("member %x is not in the cluster", selfID)
		case self.IsLearner:
			return nil // a learner's removal costs no voter
		case voters < n:
			return fmt.Errorf("removing %s would leave %d voters, fewer than cluster.size %d (another member left first): "+
				"waiting for a replacement to be promoted", self.label(), voters, n)
		case len(down) > 0:
			return fmt.Errorf("removing %s now would leave %d voters with %s not healthy: waiting until every other voter is healthy",
				self.label(), voters, strings.Join(down, ", "))
		}
		return nil
	}
}

// DeferredError is Leave's answer when its LeaveGuard refused the removal:
// nothing was removed, the leave marker is as it was, and the member may
// try again once the guard's condition holds.
type DeferredError struct{ Err error }

func (e *DeferredError) Error() string { return "leave deferred: " + e.Err.Error() }
func (e *DeferredError) Unwrap() error { return e.Err }
