package membership

import (
	"fmt"
	"strings"
	"time"
)

// Formation fencing: a cluster is bootstrapped once. A founding member
// without data may start with --initial-cluster-state=new only when nothing
// says the cluster already formed or that this member ran before; a blank
// member that reuses the ID of a past self that voted breaks Raft's safety
// argument (it can vote twice in one term and forget acknowledged writes).

// FounderState is what one of the other founding members answered on its peer
// port (static discovery, where no registry records formation).
type FounderState string

// Founder states.
const (
	// FounderBlank: the founder's agent answered that it has no data and
	// runs no etcd.
	FounderBlank FounderState = "blank"
	// FounderReady: the founder's agent has no data and saw every founder
	// without data: it is about to bootstrap.
	FounderReady FounderState = "ready"
	// FounderEtcd: an etcd member answers there: the founder holds data.
	FounderEtcd FounderState = "etcd"
	// FounderNoAnswer: nothing usable answered; it may hold data.
	FounderNoAnswer FounderState = "no answer"
)

// SelfInList is what a founder's running etcd lists about this node's
// member (static discovery: its member list, served without quorum).
type SelfInList string

// What an etcd lists about this node.
const (
	// SelfUnknown: no member list was read (not an etcd, or it failed).
	SelfUnknown SelfInList = ""
	// SelfUnstarted: this node's member is listed and never started (no
	// name published): a founder of that cluster that never ran.
	SelfUnstarted SelfInList = "unstarted"
	// SelfStarted: this node's member ran before: a past self that may
	// have voted.
	SelfStarted SelfInList = "started"
	// SelfAbsent: that cluster has no member with this node's peer URL.
	SelfAbsent SelfInList = "absent"
)

// Founder is one other founding member's answer.
type Founder struct {
	Name   string
	State  FounderState
	Detail string // what was seen, for logs ("raft term 4, leader 8e9e05c52164694d")
	// Self is what its etcd lists about this node (FounderEtcd only).
	Self SelfInList
}

// RegistryFormation is what a discovery registry (v3 or v2) records about the
// cluster's formation.
type RegistryFormation struct {
	// Formed: a founder saw the cluster healthy and recorded it. Detail
	// says who and when.
	Formed       bool
	FormedDetail string
	// SelfStarted: this member ID was recorded as started (written before
	// its etcd first started with state=new), so a past self ran and may
	// have voted.
	SelfStarted   bool
	SelfStartedAt time.Time
	// SelfNeverRan: this node's data dir proves that the started member
	// never ran: the first-start marker written before the record is
	// there and no WAL (datadir.NeverRan).
	SelfNeverRan bool
}

// FenceFacts is what a founding member without data has learned before it
// may bootstrap. Exactly one of Registry (v3, v2) and Founders (static) is
// set.
type FenceFacts struct {
	Registry *RegistryFormation
	Founders []Founder
	// SelfReady (static): this node answers "ready": it saw every other
	// founder answer without data (recorded beside the data dir, so an
	// agent restart keeps it).
	SelfReady bool
	// ClusterAnswers: a cluster with a leader answered at the endpoints this
	// node knows (discovered peers, published endpoints, its own last list).
	ClusterAnswers bool
}

// FenceKind is the verdict for a founding member without data.
type FenceKind string

// Fence verdicts.
const (
	// FenceBootstrap: bootstrap (state=new) with the founders.
	FenceBootstrap FenceKind = "bootstrap"
	// FenceJoin: the cluster formed (or this member ran before): enter it
	// only as a new member (learner), removing the past self.
	FenceJoin FenceKind = "join"
	// FenceWait: not enough is known; look again later. Never bootstrap.
	FenceWait FenceKind = "wait"
	// FenceReady (static): every founder answered without data; answer
	// "ready" from now on, then bootstrap.
	FenceReady FenceKind = "ready"
)

// FenceVerdict is the verdict with its reason, for logs and status.
type FenceVerdict struct {
	Kind   FenceKind
	Reason string
}

// Fence decides whether a founding member without data may bootstrap.
// Anything that says the cluster formed, or that this member ran before,
// means join.
//
// With static discovery every founder must bootstrap, or none: a founder
// that joins a cluster its founders have not all started waits forever for
// a quorum. So "ready" means "I saw every other founder answer without data
// and no etcd running": a founder becomes ready only then, stays ready
// across restarts (recorded), and bootstraps only when every other founder
// is ready at once, or when an etcd runs that lists this member as never
// started — since this node became ready, any etcd was started by a founder
// that saw every founder ready, this one included. A founder that is not
// ready and sees an etcd joins: that cluster formed before this round.
func Fence(f FenceFacts) FenceVerdict {
	if r := f.Registry; r != nil {
		if f.ClusterAnswers {
			return FenceVerdict{FenceJoin, "a formed cluster answers: joining it as a new member"}
		}
		switch {
		case r.SelfStarted && !r.SelfNeverRan:
			return FenceVerdict{FenceJoin, fmt.Sprintf(
				"discovery records that this member started etcd at %s and this node has no data now: it rejoins as a new member, never with its old identity",
				r.SelfStartedAt.UTC().Format(time.RFC3339))}
		case r.Formed:
			return FenceVerdict{FenceJoin, "discovery records that the cluster formed (" + r.FormedDetail + "): joining it as a new member"}
		case r.SelfStarted:
			// Killed between its record and etcd's first WAL write: the
			// member never voted nor acknowledged anything, so starting it
			// now is a late first start, whatever the other founders did
			// (they all bootstrap the same member IDs and token: one
			// cluster). Joining instead would wait forever for a cluster
			// that may never have formed.
			return FenceVerdict{FenceBootstrap, fmt.Sprintf(
				"discovery records that this member started at %s, but its etcd never wrote a WAL (first-start marker, no WAL) and no formation is recorded: bootstrapping with the same identity",
				r.SelfStartedAt.UTC().Format(time.RFC3339))}
		}
		return FenceVerdict{FenceBootstrap, "discovery records no formation and no earlier start of this member"}
	}
	var holding, silent, blank, started, absent, unstarted []string
	for _, fd := range f.Founders {
		switch fd.State {
		case FounderEtcd:
			holding = append(holding, fd.Name)
			switch fd.Self {
			case SelfStarted:
				started = append(started, fd.Name)
			case SelfAbsent:
				absent = append(absent, fd.Name)
			case SelfUnstarted:
				unstarted = append(unstarted, fd.Name)
			}
		case FounderBlank:
			blank = append(blank, fd.Name)
		case FounderReady:
		default:
			silent = append(silent, fd.Name)
		}
	}
	switch {
	case len(started) > 0:
		return FenceVerdict{FenceJoin, "founder " + strings.Join(started, ", ") + " lists this member as started before: this node lost its data and rejoins as a new member, never with its old identity"}
	case !f.SelfReady && f.ClusterAnswers:
		return FenceVerdict{FenceJoin, "a formed cluster answers: joining it as a new member"}
	case !f.SelfReady && len(silent) > 0:
		return FenceVerdict{FenceWait, fmt.Sprintf(
			"static discovery: waiting for founder %s to answer on its peer port (a founder that does not answer may hold the cluster's data)",
			strings.Join(silent, ", "))}
	case !f.SelfReady && len(holding) > 0:
		// Seen before this node saw every founder without data: that
		// etcd's data predates this round, so the cluster formed.
		return FenceVerdict{FenceJoin, "founder " + strings.Join(holding, ", ") + " holds the cluster's data: joining it as a new member"}
	case !f.SelfReady:
		return FenceVerdict{FenceReady, fmt.Sprintf("every other founder (%d) answered without data: ready to bootstrap", len(f.Founders))}
	case len(absent) > 0:
		return FenceVerdict{FenceJoin, "founder " + strings.Join(absent, ", ") + " runs a cluster without this member: joining it as a new member"}
	case len(unstarted) > 0:
		return FenceVerdict{FenceBootstrap, "founder " + strings.Join(unstarted, ", ") +
			" started the cluster after every founder was ready, this one included: bootstrapping with it"}
	case len(silent) > 0:
		return FenceVerdict{FenceWait, fmt.Sprintf(
			"static discovery: ready to bootstrap, waiting for founder %s to answer on its peer port", strings.Join(silent, ", "))}
	case len(blank) > 0:
		return FenceVerdict{FenceWait, "static discovery: ready to bootstrap, waiting for founder " + strings.Join(blank, ", ") + " to be ready too (every founder bootstraps, or none)"}
	case len(holding) > 0:
		// An etcd whose member list could not be read: ask again.
		return FenceVerdict{FenceWait, "static discovery: ready to bootstrap, reading founder " + strings.Join(holding, ", ") + "'s member list"}
	}
	return FenceVerdict{FenceBootstrap, fmt.Sprintf("every other founder (%d) is ready, as this node is: bootstrapping", len(f.Founders))}
}
