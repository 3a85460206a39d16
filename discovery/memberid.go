package discovery

import (
	"fmt"
	"sort"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
)

// MemberID returns the hex member ID etcd computes for a founding member with
// this peer URL in a cluster bootstrapped with this token. It is the last
// element of the member's discovery registry key. etcd's own function is used
// so the result cannot drift from what a plain etcd writes.
func MemberID(token string, m Member) (string, error) {
	urls, err := types.NewURLs(strings.Split(m.PeerURL, ","))
	if err != nil {
		return "", fmt.Errorf("parse peer URL of %s: %w", m.Name, err)
	}
	return membership.NewMember(m.Name, urls, token, nil).ID.String(), nil
}

// canonical checks a member and returns it with its peer URL(s) in the form
// etcd writes them (url.URL.String(), sorted).
func canonical(m Member) (Member, error) {
	if m.Name == "" {
		return Member{}, fmt.Errorf("check member %q: name is empty", m.String())
	}
	if strings.ContainsAny(m.Name, "=,") {
		return Member{}, fmt.Errorf("check member %q: name must not contain '=' or ','", m.Name)
	}
	urls, err := types.NewURLs(strings.Split(m.PeerURL, ","))
	if err != nil {
		return Member{}, fmt.Errorf("check peer URL %q of %s: %w", m.PeerURL, m.Name, err)
	}
	for _, u := range urls {
		if u.Scheme != "http" && u.Scheme != "https" {
			return Member{}, fmt.Errorf("check peer URL %q of %s: scheme must be https (or http)", u.String(), m.Name)
		}
	}
	return Member{Name: m.Name, PeerURL: strings.Join(urls.StringSlice(), ",")}, nil
}

// registrationValue is the registry value etcd writes for a member, its
// initial-cluster string "name=peerURL" (types.URLsMap.String). m must have
// been through canonical, which sorts its URLs the same way.
func registrationValue(m Member) string { return m.String() }

// parseRegistration parses a registry value "name=peerURL[,name=peerURL2]"
// written by an agent or a plain etcd.
func parseRegistration(id, value string, rev int64) (Registration, error) {
	value = strings.TrimSpace(value)
	um, err := types.NewURLsMap(value)
	if err != nil {
		return Registration{}, fmt.Errorf("parse registration %s=%q: %w", id, value, err)
	}
	if len(um) != 1 || !strings.Contains(value, "=") {
		return Registration{}, fmt.Errorf("parse registration %s=%q: want exactly one name=peerURL", id, value)
	}
	var r Registration
	for name, urls := range um {
		s := urls.StringSlice()
		sort.Strings(s)
		r = Registration{ID: id, Name: name, PeerURL: strings.Join(s, ","), CreateRevision: rev}
	}
	if r.Name == "" {
		return Registration{}, fmt.Errorf("parse registration %s=%q: empty name", id, value)
	}
	return r, nil
}
