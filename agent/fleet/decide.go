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
	// Stay says why the member stays despite a notice ("" otherwise).
	Stay string
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
	case f.Leaving:
		p.Leave = true
	case f.Notice.Kind == NoticeNone:
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
		if err := membership.LeaveCheck(f.SelfID, f.Members); err != nil {
			p.Stay = "leaving now would break quorum: " + err.Error()
			break
		}
		p.Leave = true
	}
	return p
}
