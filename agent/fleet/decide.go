package fleet

import (
	"fmt"

	"github.com/etcd-agent/etcd-agent/agent/membership"
)

// NoticeKind is why EC2 is taking this instance away.
type NoticeKind string

// Notice kinds, in the order Decide looks at them (the shortest notice
// first).
const (
	NoticeNone NoticeKind = ""
	// NoticeSpot: spot/instance-action (about two minutes' notice).
	NoticeSpot NoticeKind = "spot-interruption"
	// NoticeTerminate: the Auto Scaling group is terminating the instance
	// (target lifecycle state Terminated: scale-in, instance refresh,
	// failed health check); its terminate hook holds it meanwhile.
	NoticeTerminate NoticeKind = "auto-scaling-terminate"
	// NoticeRebalance: EC2 recommends moving off this spot instance
	// before it is interrupted.
	NoticeRebalance NoticeKind = "rebalance-recommendation"
)

// Notice is the notice an observation carries, with its details for the
// log and status.
type Notice struct {
	Kind   NoticeKind
	Detail string
}

// NoticeOf picks the most urgent notice in o (none: Kind NoticeNone).
func NoticeOf(o Observation) Notice {
	switch {
	case o.Spot != nil:
		return Notice{NoticeSpot, fmt.Sprintf("spot interruption: %s at %s", o.Spot.Action, o.Spot.Time)}
	case o.LifecycleState == LifecycleTerminated:
		return Notice{NoticeTerminate, "the Auto Scaling group is terminating this instance (target lifecycle state Terminated)"}
	case o.Rebalance != "":
		return Notice{NoticeRebalance, "EC2 rebalance recommendation since " + o.Rebalance}
	}
	return Notice{}
}

// Facts are what Decide looks at: the notice, this node's state and, when
// there is a notice, a fresh survey of the cluster.
type Facts struct {
	Notice Notice
	// Left: the leave marker says this node left; Leaving: a leave
	// started and did not finish (it is finished, whatever the quorum:
	// the member may already be removed).
	Left, Leaving bool
	// Ready: the local member is a healthy, caught-up voter (READY=1 was
	// sent). Standby: the node waits outside a full, healthy cluster.
	Ready, Standby bool
	// Surveyed: SelfID and Members are a survey taken this round;
	// SurveyError says why not.
	Surveyed    bool
	SurveyError string
	// SelfID is this node's member (0: not a member).
	SelfID  uint64
	Members []membership.ClusterMember
	// LaunchHook and TerminateHook: the hook is configured and this agent
	// has not completed it yet.
	LaunchHook, TerminateHook bool
	// DesiredSize is cluster.size. ReplacementWindow: make-before-break
	// is on and the wait for a replacement (since the Terminated notice)
	// has not run out.
	DesiredSize       int
	ReplacementWindow bool
}

// HookStep is what to do with a lifecycle hook this round.
type HookStep string

// Hook steps.
const (
	HookWait      HookStep = ""          // nothing (no hook, or not its time)
	HookHeartbeat HookStep = "heartbeat" // RecordLifecycleActionHeartbeat: still working
	HookContinue  HookStep = "continue"  // CompleteLifecycleAction CONTINUE
)

// Plan is what the job does this round.
type Plan struct {
	// Leave: leave the cluster now (membership's Leave, under the lock,
	// which checks quorum again on its own survey).
	Leave bool
	// KeepVoters (with Leave, on make-before-break): the voters that must
	// remain, all healthy, on the survey taken under the lock
	// (membership.KeepVoters); 0: the quorum rule alone.
	KeepVoters int
	// Stay says why the member stays despite a notice ("" otherwise).
	Stay string
	// OfferSeat: offer this member's seat to a standby and wait for it to
	// be promoted before leaving (make-before-break); Waiting says for
	// what.
	OfferSeat bool
	Waiting   string
	// Launch and Terminate are the steps for the two hooks.
	Launch, Terminate HookStep
}

// Decide plans one round. A member leaves on a notice only while the
// voters left keep a quorum (membership.LeaveCheck, the rule `etcd-agent
// leave` follows): losing the instance without a removal costs the cluster
// the same member, but a removal that breaks quorum would stop it. The
// launch hook completes once the member is ready (or waits as a standby,
// which is all the cluster wants of it); the terminate hook once the node
// has left. Either is heartbeated while it waits.
func Decide(f Facts) Plan {
	var p Plan
	if f.LaunchHook {
		p.Launch = HookHeartbeat
		if f.Ready || f.Standby || f.Left {
			// Left: nothing more will become ready; let the group go on.
			p.Launch = HookContinue
		}
	}
	terminating := f.TerminateHook && f.Notice.Kind == NoticeTerminate
	if terminating {
		p.Terminate = HookHeartbeat
	}
	switch {
	case f.Left:
		if terminating {
			p.Terminate = HookContinue
		}
	case f.Notice.Kind == NoticeNone:
		// Nothing from EC2. A leave in progress without a notice is
		// `etcd-agent leave`'s own: not run twice at once.
	case f.Leaving:
		// A leave that started (on a notice, or by hand) and was cut
		// short: the member may already be removed; finish it.
		p.Leave = true
	case !f.Surveyed:
		p.Stay = "cannot survey the cluster: " + f.SurveyError
	case f.SelfID == 0:
		// Not a member (a standby, or a join not started): nothing to
		// hand over, and the instance may go.
		p.Stay = "this node is not a member of the cluster: nothing to leave"
		if terminating {
			p.Terminate = HookContinue
		}
	default:
		w, pending, replaced := replacementPending(f)
		if pending {
			p.OfferSeat, p.Waiting = true, w
			break
		}
		if err := membership.LeaveCheck(f.SelfID, f.Members); err != nil {
			p.Stay = "leaving now would break quorum: " + err.Error()
			break
		}
		p.Leave = true
		if replaced {
			// This survey was taken outside the lock: another member
			// terminated at the same time may leave on the same
			// replacement. The condition must hold again under the lock.
			// A scale-in (the window ran out, no replacement) and the
			// spot notices keep the quorum rule alone: with two minutes'
			// notice, leaving beats dying as a voter.
			p.KeepVoters = f.DesiredSize
		}
	}
	return p
}

// replacementPending says whether a terminating voter waits for its
// replacement (make-before-break) and what for. It waits on the group's
// Terminated notice only (a spot notice gives two minutes: no time), while
// the window is open, until the voters beyond cluster.size are all
// healthy: then it leaves, and the cluster keeps its size and its fault
// tolerance throughout. A replacement learner still catching up keeps it
// waiting past the window (the terminate hook's heartbeats hold the
// instance; the learner's own catch-up timeout bounds it).
//
// replaced says the member leaves because the replacement is a voter: its
// removal must then keep cluster.size voters, all healthy (Plan.KeepVoters).
func replacementPending(f Facts) (waiting string, pending, replaced bool) {
	if f.Notice.Kind != NoticeTerminate || f.DesiredSize == 0 {
		return "", false, false
	}
	var self *membership.ClusterMember
	voters, healthy, learner := 0, 0, ""
	for i, m := range f.Members {
		if m.ID == f.SelfID {
			self = &f.Members[i]
		}
		if m.IsLearner {
			if m.Healthy {
				learner = m.Name
			}
			continue
		}
		voters++
		if m.Healthy {
			healthy++
		}
	}
	if self == nil || self.IsLearner {
		return "", false, false
	}
	switch {
	case voters > f.DesiredSize && healthy == voters:
		return "", false, true // the replacement is a voter: leave now
	case learner != "":
		return fmt.Sprintf("replacement %s is a learner catching up; this member leaves once it is a voter (%d/%d voters healthy)", learner, healthy, voters), true, false
	case f.ReplacementWindow:
		return fmt.Sprintf("seat offered to a replacement: this member leaves once it is a voter (%d/%d voters healthy, cluster.size %d)", healthy, voters, f.DesiredSize), true, false
	}
	return "", false, false
}
