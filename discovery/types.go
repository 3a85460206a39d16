package discovery

import (
	"context"
	"strings"
)

// Member is one founding member: its etcd name and its one peer URL
// (https://IP:2380).
type Member struct {
	Name    string
	PeerURL string
}

// String renders the member as etcd's initial-cluster element name=peerURL.
// A member registered by a plain etcd with several peer URLs carries them
// comma-separated in PeerURL; each becomes its own name=URL element.
func (m Member) String() string {
	urls := strings.Split(m.PeerURL, ",")
	for i, u := range urls {
		urls[i] = m.Name + "=" + u
	}
	return strings.Join(urls, ",")
}

// Progress reports how far a registry is from full, for status lines such as
// "waiting for 2 more members in discovery".
type Progress struct {
	Registered int // registrations seen, at most Size
	Size       int // the cluster size the token was created with
	// Problem says what the source is waiting on when it is not simply
	// waiting for peers, e.g. "discovery at https://10.0.0.9:2379
	// unreachable, retrying in 4s". Empty when fine.
	Problem string
}

// Waiting is the number of members still missing.
func (p Progress) Waiting() int { return max(p.Size-p.Registered, 0) }

// Result is the outcome of a successful discovery.
type Result struct {
	// Token is the initial cluster token to start etcd with. It is the
	// token that member IDs in the registry were computed with.
	Token string
	// Members are the founding members, Size of them, in registration
	// (create revision / created index) order.
	Members []Member
	// Self is true when self is among Members (bootstrap path); false means
	// the registry filled up without us (join path).
	Self bool
}

// InitialCluster renders Members as etcd's --initial-cluster value.
func (r Result) InitialCluster() string {
	parts := make([]string, 0, len(r.Members))
	for _, m := range r.Members {
		parts = append(parts, m.String())
	}
	return strings.Join(parts, ",")
}

// Source finds the founding members of a new cluster.
type Source interface {
	// Bootstrap registers self (idempotently: a re-run with the same name
	// and peer URL finds its own earlier registration) and waits until Size
	// members are registered, calling progress (which may be nil) on each
	// change.
	Bootstrap(ctx context.Context, self Member, progress func(Progress)) (Result, error)
}

// Registration is one entry of a discovery registry.
type Registration struct {
	ID             string // member ID in hex, the last element of the key
	Name           string
	PeerURL        string
	CreateRevision int64 // v3 create revision, or v2 createdIndex
}

// Member returns the registration's member.
func (r Registration) Member() Member { return Member{Name: r.Name, PeerURL: r.PeerURL} }

// Compile-time checks that every source implements Source.
var (
	_ Source = (*V3)(nil)
	_ Source = (*V2)(nil)
	_ Source = (*Static)(nil)
)
