// Package cluster is how the agent's jobs talk to the etcd cluster as a
// whole: clients with the agent's certificate, one survey of every member
// (Survey), the cluster-wide membership lock (Lock), the membership changes
// with etcd's retries (AddLearner, RemoveMember, ConfirmRemoved,
// MoveLeader), and the agents' heartbeats.
//
// Every call here has a deadline from the constants below, so no job can wait
// on a silent member for longer than they say.
package cluster

import "time"

// Deadlines of every call to the cluster.
const (
	// DialTimeout bounds a TCP connection attempt to a member: a quick way
	// to tell a stopped member from a slow one.
	DialTimeout = 500 * time.Millisecond
	// ListTimeout bounds a member list or alarm list (linearizable: a
	// cluster electing a leader answers within it).
	ListTimeout = 10 * time.Second
	// MemberTimeout bounds one member's Status answer in a survey.
	MemberTimeout = 2 * time.Second
	// CallTimeout bounds any other single call (a put, a get, a lock check).
	CallTimeout = 5 * time.Second
)
