package recovery

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/refusal"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// Probe is what one endpoint of the cluster answered. Status is served
// without a quorum, so an answer only says the member runs.
type Probe struct {
	Endpoint  string
	Answered  bool
	ClusterID uint64
	MemberID  uint64
	RaftIndex uint64
	Err       string
}

// QuorumFacts is what the node found out before a recovery: every known
// endpoint's Status, and whether a linearizable read succeeded anywhere
// (only a quorum serves one).
type QuorumFacts struct {
	Probes []Probe
	// ReadOK: a linearizable read succeeded through ReadVia, a member of
	// cluster ReadClusterID.
	ReadOK        bool
	ReadVia       string
	ReadClusterID uint64
	// DataClusterID is the cluster of this node's member data (0: none).
	DataClusterID uint64
}

// Asked are the endpoints the quorum check probed.
func (f QuorumFacts) Asked() []string {
	eps := make([]string, len(f.Probes))
	for i, p := range f.Probes {
		eps[i] = p.Endpoint
	}
	return eps
}

// Refusal is why the recovery must not run, or nil: a recovery while a
// quorum answers would split the cluster in two. (Which member a recovery
// from a member must run on is WALRefusal's rule.)
func Refusal(f QuorumFacts) error {
	if f.ReadOK {
		msg := fmt.Sprintf("the cluster still has a quorum: a linearizable read through %s succeeded (cluster %x). recover is only for a quorum lost for good; replace lost nodes instead (new nodes join as members automatically)",
			f.ReadVia, f.ReadClusterID)
		if f.DataClusterID != 0 && f.DataClusterID != f.ReadClusterID {
			msg += fmt.Sprintf(". This node's data belongs to cluster %x: if that cluster was replaced by a recovery, the agent moves this data aside and joins cluster %x by itself", f.DataClusterID, f.ReadClusterID)
		}
		return &refusal.Error{Reason: errors.New(msg)}
	}
	return nil
}

// ClaimFacts is what a node knows when it claims the recovery record.
type ClaimFacts struct {
	Existing *discovery.Recovery // the registry's record; nil: none
	Self     string              // this node's member name
	Request  Request
	// Known are cluster IDs (hex) the new cluster replaces besides the
	// registry's: the formation record's, this member's data's, the
	// snapshot's.
	Known []string
	Now   time.Time
	// Checked: the quorum check ran and found no quorum; Probed are the
	// endpoints it asked. Before it ran (the command's first look) the
	// rule on a finished recovery's endpoints waits for the agent's claim.
	Checked bool
	Probed  []string
}

// Claim returns the record this node writes before it builds the new
// cluster: a new generation, or its own unfinished one again (a resumed
// recovery). Another node's unfinished recovery is refused unless the
// request takes it over.
func Claim(f ClaimFacts) (discovery.Recovery, error) {
	prev := f.Existing
	if prev != nil && prev.By == f.Self && prev.Token == f.Request.Token && prev.State != discovery.RecoveryFailed {
		return *prev, nil // resuming our own recovery
	}
	if prev != nil && prev.State == discovery.RecoveryStarted {
		if !f.Request.Takeover {
			return discovery.Recovery{}, refusal.Errorf("%s is unfinished: if that recovery is abandoned (its node is gone), run recover again with --takeover", prev)
		}
	}
	if err := barrier(f); err != nil {
		return discovery.Recovery{}, err
	}
	rec := discovery.Recovery{
		Generation: 1,
		State:      discovery.RecoveryStarted,
		By:         f.Self,
		From:       f.Request.Describe(),
		Token:      f.Request.Token,
		StartedAt:  f.Now.UTC(),
	}
	var replaced []string
	if prev != nil {
		rec.Generation = prev.Generation + 1
		replaced = append(replaced, prev.Replaced...)
		replaced = append(replaced, prev.ClusterID)
	}
	replaced = append(replaced, f.Known...)
	replaced = slices.DeleteFunc(replaced, func(s string) bool { return s == "" || s == "0" })
	slices.Sort(replaced)
	rec.Replaced = slices.Compact(replaced)
	return rec, nil
}

// barrier refuses to replace a finished recovery's cluster that the quorum
// check did not look for: it must have asked every endpoint the record
// names (and found no quorum), or the operator names the generation it
// replaces (--replaces). Without it, a recovery run where the recovered
// cluster's members are unknown (a fresh node, another side of a
// partition) would replace a serving cluster silently.
func barrier(f ClaimFacts) error {
	prev, named := f.Existing, f.Request.Replaces
	if named != 0 && (prev == nil || prev.Generation != named) {
		newest := "the registry records no recovery"
		if prev != nil {
			newest = "the registry's newest is " + prev.String()
		}
		return refusal.Errorf("--replaces %d: %s. Name the newest generation, or leave --replaces out", named, newest)
	}
	if prev == nil || prev.State != discovery.RecoveryDone || prev.ClusterID == "" || named == prev.Generation {
		return nil
	}
	if len(prev.Endpoints) == 0 {
		return refusal.Errorf("%s built cluster %s, and its record names none of that cluster's endpoints (an older agent finished it), so this node cannot check that it lost its quorum too: a second recovery would replace it silently. Check that cluster %s is gone, then run recover again with --replaces %d",
			prev, prev.ClusterID, prev.ClusterID, prev.Generation)
	}
	if !f.Checked {
		return nil
	}
	var missed []string
	for _, ep := range prev.Endpoints {
		if !slices.Contains(f.Probed, ep) {
			missed = append(missed, ep)
		}
	}
	if len(missed) > 0 {
		return refusal.Errorf("%s built cluster %s, and the quorum check did not ask its members at %s: a second recovery would replace it silently. Check that cluster %s is gone, then run recover again with --replaces %d",
			prev, prev.ClusterID, strings.Join(missed, ", "), prev.ClusterID, prev.Generation)
	}
	return nil
}

// SupersededBy says why data of cluster dataClusterID must not be used any
// more: rec (the registry's or the answering cluster's record) names it as
// replaced. ok is false when rec says nothing about it.
func SupersededBy(rec *discovery.Recovery, dataClusterID uint64) (reason string, ok bool) {
	if rec == nil || dataClusterID == 0 || !rec.Replaces(fmt.Sprintf("%x", dataClusterID)) {
		return "", false
	}
	return fmt.Sprintf("this node's data belongs to cluster %x, which %s replaced after its quorum was lost", dataClusterID, rec), true
}
