package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Static is a fixed list of founding members.
type Static struct {
	Members []Member // from ParseStatic
	Token   string   // initial cluster token; required
}

// Bootstrap returns the list when self is in it, and an error naming the
// list and self otherwise: a static list has no "full" state to join, so a
// node left out of it is a configuration mistake.
func (s *Static) Bootstrap(ctx context.Context, self Member, progress func(Progress)) (Result, error) {
	if s.Token == "" {
		return Result{}, errors.New("bootstrap from static member list: initial cluster token is empty")
	}
	if len(s.Members) == 0 {
		return Result{}, errors.New("bootstrap from static member list: the list is empty")
	}
	self, err := canonical(self)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap from static member list: %w", err)
	}
	res := Result{Token: s.Token}
	for _, m := range s.Members {
		cm, err := canonical(m)
		if err != nil {
			return Result{}, fmt.Errorf("bootstrap from static member list: %w", err)
		}
		switch {
		case cm == self:
			res.Self = true
		case cm.Name == self.Name:
			return Result{}, conflictf("bootstrap from static member list %s: it lists %s with peer URL %s, this node is %s",
				list(s.Members), self.Name, cm.PeerURL, self.PeerURL)
		case cm.PeerURL == self.PeerURL:
			return Result{}, conflictf("bootstrap from static member list %s: it lists peer URL %s as %q, this node is %q",
				list(s.Members), self.PeerURL, cm.Name, self.Name)
		}
		res.Members = append(res.Members, cm)
	}
	if !res.Self {
		return Result{}, &detailedError{kind: ErrNotListed, msg: fmt.Sprintf(
			"bootstrap from static member list %s: this node %s is not in it: add it to the list", list(s.Members), self)}
	}
	if progress != nil {
		progress(Progress{Registered: len(res.Members), Size: len(res.Members)})
	}
	return res, nil
}

// ParseStatic parses "name=https://10.0.1.5:2380,name2=https://10.0.1.6:2380",
// one peer URL per member, names and peer URLs unique.
func ParseStatic(s string) ([]Member, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("parse static member list: empty: want name=https://IP:2380[,name=https://IP:2380]")
	}
	var members []Member
	names := map[string]bool{}
	urls := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		name, peerURL, ok := strings.Cut(item, "=")
		if !ok || name == "" || peerURL == "" {
			return nil, fmt.Errorf("parse static member list: element %q: want name=https://IP:2380", item)
		}
		m, err := canonical(Member{Name: strings.TrimSpace(name), PeerURL: strings.TrimSpace(peerURL)})
		if err != nil {
			return nil, fmt.Errorf("parse static member list: %w", err)
		}
		if names[m.Name] {
			return nil, conflictf("parse static member list: name %q appears twice: one peer URL per member", m.Name)
		}
		if other, dup := urls[m.PeerURL]; dup {
			return nil, conflictf("parse static member list: peer URL %s is claimed by both %q and %q", m.PeerURL, other, m.Name)
		}
		names[m.Name], urls[m.PeerURL] = true, m.Name
		members = append(members, m)
	}
	return members, nil
}

// list renders members as a static list string.
func list(ms []Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ",")
}
