// Package membership is how a node enters, stays in and leaves the cluster:
// restart in place, bootstrap a new cluster, or join an existing one;
// promotion, the check that its data still belongs, rejoin and leave.
//
// The decisions are pure functions over facts (Decide, Fence, PlanJoin,
// LeaveCheck, TrackOutages: decide.go, fence.go, plan.go, outage.go), so every
// path is testable as a table without a network. The membership job (Job,
// job.go and the files beside it) gathers the facts and acts on them.
package membership

import (
	"fmt"
	"strings"
)

// Path is how the node's etcd member is started.
type Path string

const (
	// Restart: the data dir holds a member; start it with the same
	// identity and never consult discovery again.
	Restart Path = "restart"
	// Bootstrap: no data, and this node is one of the founding members
	// that discovery returned; start with initial-cluster-state=new.
	Bootstrap Path = "bootstrap"
	// Join: no data, and the cluster formed (discovery full without us, or
	// the formation fence says so); add self as a learner (PlanJoin) and
	// start with state=existing.
	Join Path = "join"
)

// Member is a founding member as discovery returned it.
type Member struct {
	Name    string
	PeerURL string
}

// Facts are what the agent knows before choosing a path.
type Facts struct {
	// HasData: the data dir holds a member (member/wal exists).
	HasData bool
	// Self is this node.
	Self Member
	// Discovered is the founding member list; nil when discovery was not
	// consulted (HasData) .
	Discovered []Member
	// Token is the initial cluster token from discovery.
	Token string
}

// Decision is the chosen path with what etcd needs for it and why.
type Decision struct {
	Path                Path
	InitialCluster      string // for Bootstrap
	InitialClusterState string // "new" for Bootstrap, "existing" for Join, "" for Restart
	Token               string
	Reason              string
}

// Decide picks Restart (data present) or Bootstrap (a founder the fence let
// bootstrap). Joins are planned by PlanJoin.
func Decide(f Facts) (Decision, error) {
	if f.HasData {
		return Decision{Path: Restart, Reason: "data dir holds a member: restarting it in place, discovery is not consulted"}, nil
	}
	if f.Discovered == nil {
		return Decision{}, fmt.Errorf("decide membership: no data and no discovery result")
	}
	if indexOf(f.Discovered, f.Self) < 0 {
		// A node outside the founders never bootstraps: it joins through
		// PlanJoin, under the membership lock.
		return Decision{}, fmt.Errorf("decide membership: %s is not among the %d founding members: it must join, not bootstrap", f.Self.Name, len(f.Discovered))
	}
	if err := checkNames(f.Discovered); err != nil {
		return Decision{}, err
	}
	return Decision{
		Path:                Bootstrap,
		InitialCluster:      InitialCluster(f.Discovered),
		InitialClusterState: "new",
		Token:               f.Token,
		Reason:              fmt.Sprintf("founding member %d of %d from discovery: bootstrapping a new cluster", indexOf(f.Discovered, f.Self)+1, len(f.Discovered)),
	}, nil
}

// InitialCluster renders etcd's --initial-cluster value. A member
// registered by a plain etcd with several peer URLs carries them
// comma-separated; each becomes its own name=URL element, as etcd expects.
func InitialCluster(ms []Member) string {
	var parts []string
	for _, m := range ms {
		for _, u := range strings.Split(m.PeerURL, ",") {
			parts = append(parts, m.Name+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

// checkNames refuses two founding members with one name: etcd would merge
// them into one member with two peer URLs and never reach quorum.
func checkNames(ms []Member) error {
	seen := map[string]string{}
	for _, m := range ms {
		if prev, ok := seen[m.Name]; ok && prev != m.PeerURL {
			return fmt.Errorf("decide membership: two nodes claim the name %q (%s and %s): give each node a unique node.name or IP", m.Name, prev, m.PeerURL)
		}
		seen[m.Name] = m.PeerURL
	}
	return nil
}

func indexOf(ms []Member, m Member) int {
	for i, x := range ms {
		if x == m {
			return i
		}
	}
	return -1
}
