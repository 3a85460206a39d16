package recovery

import (
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/discovery"
)

// AsideFacts is what a node knows when it asks whether to move its data
// aside because a recovery record names the data's cluster as replaced.
type AsideFacts struct {
	// Record is the recovery record found (the registry's or the answering
	// cluster's); nil: none.
	Record *discovery.Recovery
	// DataClusterID is the cluster this node's data belongs to.
	DataClusterID uint64
	// ReadVia is the endpoint through which a linearizable read of the
	// data's own cluster just succeeded; "": none did.
	ReadVia string
	// QuorumWithSelf, before a restart: the members of the data's cluster
	// that run, this one included, make a quorum (how many of how many);
	// "": they do not.
	QuorumWithSelf string
	// NoQuorumSince is when this agent began to see no quorum of the
	// data's cluster, without a break since; zero: it has not.
	NoQuorumSince time.Time
	Now           time.Time
	// Grace is cluster.deadMemberGrace.
	Grace time.Duration
}

// AsideVerdict is what to do with data a recovery record names.
type AsideVerdict string

const (
	// AsideKeep: the data's cluster is not replaced, or still serves: the
	// member keeps (or restarts with) its data.
	AsideKeep AsideVerdict = "keep"
	// AsideWait: not yet: neither start the member nor move its data.
	AsideWait AsideVerdict = "wait"
	// AsideMove: the cluster is gone: move the data aside and join the
	// new cluster.
	AsideMove AsideVerdict = "move"
)

// AsideDecision is the verdict and why.
type AsideDecision struct {
	Verdict AsideVerdict
	Reason  string
}

// DecideAside decides whether data of a cluster a recovery replaced is moved
// aside. Only when that cluster is gone: a recovery run on the wrong side of
// a partition leaves a majority that still acknowledges writes, and a
// defragmentation, an alarm, an election or a frozen peer makes a member of
// it unhealthy for a while. So never while a linearizable read of the
// data's cluster succeeds (or its running members would make a quorum with
// this one), never while the recovery is still started (it may fail yet),
// and only once this agent has seen no quorum of it for longer than the
// grace.
func DecideAside(f AsideFacts) AsideDecision {
	why, ok := SupersededBy(f.Record, f.DataClusterID)
	if !ok {
		return AsideDecision{Verdict: AsideKeep}
	}
	old := fmt.Sprintf("%x", f.DataClusterID)
	switch {
	case f.ReadVia != "":
		return AsideDecision{Verdict: AsideKeep, Reason: fmt.Sprintf("%s; but cluster %s still serves (a linearizable read through %s succeeded): the data stays", why, old, f.ReadVia)}
	case f.QuorumWithSelf != "":
		return AsideDecision{Verdict: AsideKeep, Reason: fmt.Sprintf("%s; but cluster %s has a quorum with this member (%s): the data stays", why, old, f.QuorumWithSelf)}
	case f.Record.State == discovery.RecoveryStarted:
		return AsideDecision{Verdict: AsideWait, Reason: fmt.Sprintf("%s; the recovery is still started (it may fail yet): waiting", why)}
	}
	var lost time.Duration
	if !f.NoQuorumSince.IsZero() {
		lost = f.Now.Sub(f.NoQuorumSince).Round(time.Second)
	}
	if f.NoQuorumSince.IsZero() || f.Now.Sub(f.NoQuorumSince) <= f.Grace {
		return AsideDecision{Verdict: AsideWait, Reason: fmt.Sprintf("%s; no quorum of cluster %s answered for %s of the %s grace (cluster.deadMemberGrace): waiting", why, old, lost, f.Grace)}
	}
	return AsideDecision{Verdict: AsideMove, Reason: fmt.Sprintf("%s; no quorum of cluster %s answered for %s (grace %s)", why, old, lost, f.Grace)}
}
