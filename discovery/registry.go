package discovery

import (
	"cmp"
	"fmt"
	"slices"
)

// standing is what one listing of a registry says from self's point of view.
// It is computed by assess, a pure function shared by V2 and V3.
type standing struct {
	Size           int
	Winners        []Registration // the first Size registrations by create revision
	SelfRegistered bool           // self's key exists, winning or not
	SelfWins       bool           // self is among Winners
}

// Full reports whether Size members have registered.
func (s standing) Full() bool { return len(s.Winners) >= s.Size }

// Progress is the standing as a status report.
func (s standing) Progress() Progress {
	return Progress{Registered: len(s.Winners), Size: s.Size}
}

// Result is the standing as a discovery result.
func (s standing) Result(token string) Result {
	members := make([]Member, 0, len(s.Winners))
	for _, r := range s.Winners {
		members = append(members, r.Member())
	}
	return Result{Token: token, Members: members, Self: s.SelfWins}
}

// sortRegistrations orders registrations the way etcd does: by create
// revision (v2: created index), first registered first. Ties cannot happen
// within one registry; the ID breaks them to keep the order total.
func sortRegistrations(regs []Registration) {
	slices.SortStableFunc(regs, func(a, b Registration) int {
		return cmp.Or(cmp.Compare(a.CreateRevision, b.CreateRevision), cmp.Compare(a.ID, b.ID))
	})
}

// assess decides where self stands in a registry of size members holding
// regs (well-formed registrations in any order). self must be canonical and
// selfID its member ID. It fails when the registry cannot form a cluster with
// self in it: a name claimed by two peer URLs, or self's peer URL registered
// under another name.
func assess(size int, regs []Registration, self Member, selfID string) (standing, error) {
	if size < 1 {
		return standing{}, fmt.Errorf("assess registry: size %d is not a positive number", size)
	}
	regs = slices.Clone(regs)
	sortRegistrations(regs)

	st := standing{Size: size}
	for _, r := range regs {
		switch {
		case r.ID == selfID && (r.Name != self.Name || r.PeerURL != self.PeerURL):
			return standing{}, conflictf("check registry: peer URL %s is already registered as %q (member %s), this node is %q: "+
				"two nodes share one peer URL, or this node was renamed", r.PeerURL, r.String(), r.ID, self.String())
		case r.ID != selfID && r.Name == self.Name:
			return standing{}, conflictf("check registry: member name %q is claimed by two peer URLs: %s (registered, member %s) and %s (this node): "+
				"give every node its own name", self.Name, r.PeerURL, r.ID, self.PeerURL)
		case r.ID == selfID:
			st.SelfRegistered = true
		}
	}

	st.Winners = regs[:min(size, len(regs))]
	seen := make(map[string]Registration, len(st.Winners))
	for _, r := range st.Winners {
		if prev, ok := seen[r.Name]; ok {
			return standing{}, conflictf("check registry: member name %q is claimed by two peer URLs: %s (member %s) and %s (member %s)",
				r.Name, prev.PeerURL, prev.ID, r.PeerURL, r.ID)
		}
		seen[r.Name] = r
		if r.ID == selfID {
			st.SelfWins = true
		}
	}
	return st, nil
}

// String renders a registration as its registry value, name=peerURL.
func (r Registration) String() string { return r.Member().String() }
