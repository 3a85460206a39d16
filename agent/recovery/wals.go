package recovery

import (
	"fmt"
	"slices"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/refusal"
)

// A recovery from a member replays that member's whole WAL, so it keeps
// every acknowledged write only when no other member of the lost cluster
// holds entries it lacks. Status cannot tell: it compares committed indexes
// (a follower that appended an acknowledged entry but had not learned it
// was committed looks equal), and a member restarted without a quorum never
// serves its client port (it looks dead). Each node's agent reads its own
// WAL whatever etcd's state (package agentapi), and the rule below asks
// every member of the lost cluster.

// MemberWAL is what one other member of the lost cluster said of its WAL.
type MemberWAL struct {
	Name     string
	Address  string // the agent API asked
	Answered bool
	// HasMember: the node holds member data (of ClusterID in Tail).
	HasMember bool
	Tail      datadir.Tail
	Err       string
}

// WALFacts is what a recovery from this node's member knows of the lost
// cluster's WALs.
type WALFacts struct {
	Self  string       // this node's member name
	Local datadir.Tail // this member's WAL
	// Members are the other members of the lost cluster as this node last
	// saw them healthy (or, without a recorded list, every other node it
	// knows an address of).
	Members []MemberWAL
	// Lost are members the operator declared gone for good (--lost).
	Lost []string
	// Force: go ahead although a member holds newer entries.
	Force bool
}

// WALRefusal is why this member must not be the one a recovery replays, or
// nil: a member of the lost cluster holds newer entries (run it there), or
// did not answer and was not declared lost (its WAL may hold them).
func WALRefusal(f WALFacts) error {
	var names []string
	for _, m := range f.Members {
		names = append(names, m.Name)
	}
	for _, l := range f.Lost {
		if !slices.Contains(names, l) {
			return refusal.Errorf("--lost %s: no other member %s in cluster %x as this node last saw it (its other members: %s)",
				l, l, f.Local.ClusterID, strings.Join(names, ", "))
		}
	}
	var silent, moved []string
	var newest *MemberWAL
	for i, m := range f.Members {
		switch {
		case slices.Contains(f.Lost, m.Name):
		case !m.Answered:
			silent = append(silent, fmt.Sprintf("%s (%s: %s)", m.Name, m.Address, m.Err))
		case m.HasMember && m.Tail.ClusterID != 0 && m.Tail.ClusterID != f.Local.ClusterID:
			moved = append(moved, fmt.Sprintf("%s (cluster %x)", m.Name, m.Tail.ClusterID))
		case m.HasMember && m.Tail.ClusterID == f.Local.ClusterID && m.Tail.NewerThan(f.Local):
			if newest == nil || m.Tail.NewerThan(newest.Tail) {
				newest = &f.Members[i]
			}
		}
	}
	if newest != nil && !f.Force {
		return refusal.Errorf("member %s holds newer entries than this member (its WAL ends at index %d, term %d; this member's at index %d, term %d): a recovery from here would lose the writes only it holds. Run `etcd-agent recover --from-member` on %s, or pass --force to recover from this member and lose them",
			newest.Name, newest.Tail.LastIndex, newest.Tail.LastTerm, f.Local.LastIndex, f.Local.LastTerm, newest.Name)
	}
	if len(moved) > 0 {
		// Without a registry this is what tells a second recovery from
		// the first: the members that reach a recovered cluster join it.
		return refusal.Errorf("%s now hold data of another cluster: the lost cluster %x was already recovered (or they left it), and a second recovery would split its members between two clusters. Run `etcd-agent status` there; if that cluster is gone too, recover from one of its members. Only for a node whose data you give up: --lost NAME",
			strings.Join(moved, ", "), f.Local.ClusterID)
	}
	if len(silent) > 0 {
		return refusal.Errorf("the agents of %s did not answer: their WALs may hold acknowledged writes this member lacks. Start those agents (an agent answers whatever its etcd's state), or, for a node gone for good, run recover again with --lost NAME",
			strings.Join(silent, ", "))
	}
	return nil
}

// refuseSuperseded refuses a recovery from data the registry records as
// belonging to a replaced cluster.
func refuseSuperseded(s *Superseded) error {
	return refusal.Errorf("%s: recovering from it would bring back a cluster already replaced; recover from a member of the newest cluster, or from a snapshot", s.Reason)
}

// describeWALs is one progress line about every member's WAL.
func describeWALs(f WALFacts) string {
	parts := []string{fmt.Sprintf("%s (here): index %d, term %d", f.Self, f.Local.LastIndex, f.Local.LastTerm)}
	for _, m := range f.Members {
		switch {
		case slices.Contains(f.Lost, m.Name):
			parts = append(parts, m.Name+": declared lost")
		case !m.Answered:
			parts = append(parts, fmt.Sprintf("%s: no answer (%s)", m.Name, m.Err))
		case !m.HasMember:
			parts = append(parts, m.Name+": no member data")
		case m.Tail.ClusterID != f.Local.ClusterID:
			parts = append(parts, fmt.Sprintf("%s: data of another cluster (%x)", m.Name, m.Tail.ClusterID))
		default:
			parts = append(parts, fmt.Sprintf("%s: index %d, term %d", m.Name, m.Tail.LastIndex, m.Tail.LastTerm))
		}
	}
	return "WALs of the lost cluster: " + strings.Join(parts, "; ")
}
