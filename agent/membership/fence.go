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

// Founder is one other founding member's answer.
type Founder struct {
	Name   string
	State  FounderState
	Detail string // what was seen, for logs ("raft term 4, leader 8e9e05c52164694d")
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
	// SelfReady (static): this node already answers "ready", since
	// ReadyFor.
	SelfReady bool
	ReadyFor  time.Duration
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
// means join. With static discovery every other founder must answer: a
// founder becomes ready only when no founder holds data, and an etcd seen
// before that means the cluster formed earlier.
func Fence(f FenceFacts) FenceVerdict {
	if f.ClusterAnswers {
		return FenceVerdict{FenceJoin, "a formed cluster answers: joining it as a new member"}
	}
	if r := f.Registry; r != nil {
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
	var holding, silent, blank []string
	for _, fd := range f.Founders {
		switch fd.State {
		case FounderEtcd:
			holding = append(holding, fd.Name)
		case FounderBlank:
			blank = append(blank, fd.Name)
		case FounderReady:
		default:
			silent = append(silent, fd.Name)
		}
	}
	switch {
	case len(silent) > 0:
		return FenceVerdict{FenceWait, fmt.Sprintf(
			"static discovery: waiting for founder %s to answer on its peer port (a founder that does not answer may hold the cluster's data)",
			strings.Join(silent, ", "))}
	case !f.SelfReady && len(holding) > 0:
		// Seen before this node saw every founder without data: that
		// etcd's data predates this round, so the cluster formed.
		return FenceVerdict{FenceJoin, "founder " + strings.Join(holding, ", ") + " holds the cluster's data: joining it as a new member"}
	case !f.SelfReady:
		return FenceVerdict{FenceReady, fmt.Sprintf("every other founder (%d) answered without data: ready to bootstrap", len(f.Founders))}
	case len(blank) == 0 || f.ReadyFor >= ReadyWait:
		// Since this node became ready, no founder held data: any etcd
		// now running started in this round.
		return FenceVerdict{FenceBootstrap, fmt.Sprintf("every other founder (%d) answered without data before this node bootstrapped", len(f.Founders))}
	}
	return FenceVerdict{FenceWait, "static discovery: ready to bootstrap, waiting for founder " + strings.Join(blank, ", ") + " to be ready too"}
}

// ReadyWait is how long a ready founder waits for blank founders to become
// ready before it bootstraps anyway (they then join as learners).
const ReadyWait = 10 * time.Second
