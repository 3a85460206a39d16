// Package dnsrecords keeps the cluster's client DNS records in step with its
// membership: one SRV record per voting member under
// _etcd-client-ssl._tcp.<domain> (what `etcdctl --discovery-srv` and etcd's
// client SRV discovery resolve), each pointing at the member's own A (or
// AAAA) record <member>.<domain>. The planner here is pure: from the member
// list and the zone's current records it computes the one change batch that
// brings the zone in step (Plan), or withdraws one member (Withdraw). The job
// (job.go) runs it on the leader's agent under the membership lock, and
// zone.go talks to Route 53.
package dnsrecords

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

// Service is the SRV service and protocol label clients look up over TLS.
const Service = "_etcd-client-ssl._tcp"

// Record types the agents write.
const (
	TypeSRV  = "SRV"
	TypeA    = "A"
	TypeAAAA = "AAAA"
)

// Actions of a Change (Route 53's).
const (
	Upsert = "UPSERT"
	Delete = "DELETE"
)

// RecordSet is one Route 53 resource record set: a name (absolute, lower
// case, with the trailing dot), a type, a TTL in seconds and its values
// (sorted).
type RecordSet struct {
	Name   string
	Type   string
	TTL    int64
	Values []string
}

func (r RecordSet) String() string {
	return fmt.Sprintf("%s %d %s [%s]", r.Name, r.TTL, r.Type, strings.Join(r.Values, ", "))
}

func (r RecordSet) equal(o RecordSet) bool {
	return r.Name == o.Name && r.Type == o.Type && r.TTL == o.TTL && slices.Equal(r.Values, o.Values)
}

// Change is one change of a batch.
type Change struct {
	Action string
	Set    RecordSet
}

func (c Change) String() string { return c.Action + " " + c.Set.String() }

// Member is what the planner knows of a cluster member (from the member
// list).
type Member struct {
	Name       string
	ClientURLs []string
	Learner    bool
}

// Zone names the records: the domain (no trailing dot) and their TTL.
type Zone struct {
	Domain string
	TTL    int64
}

// SRVName is the SRV record set's name.
func (z Zone) SRVName() string { return fqdn(Service + "." + z.Domain) }

// target is where m's SRV record points and the address record that names
// it (zero RecordSet when the client URL already holds a host name). ok is
// false for a member with no usable client URL (not started yet).
func (z Zone) target(m Member) (srvValue string, addr RecordSet, ok bool) {
	for _, raw := range m.ClientURLs {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = "443"
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			continue
		}
		host := u.Hostname()
		ip, err := netip.ParseAddr(host)
		if err != nil {
			// A host name: clients reach it as it is, no record of ours.
			return fmt.Sprintf("0 10 %s %s", port, fqdn(host)), RecordSet{}, true
		}
		name := fqdn(config.MemberRecordName(m.Name, z.Domain))
		addr = RecordSet{Name: name, Type: TypeA, TTL: z.TTL, Values: []string{ip.Unmap().String()}}
		if ip.Unmap().Is6() {
			addr.Type = TypeAAAA
		}
		return fmt.Sprintf("0 10 %s %s", port, name), addr, true
	}
	return "", RecordSet{}, false
}

// Desired is the record sets the members call for: one SRV value per voter
// that has an https client URL, and an address record per such voter whose
// URL holds an IP. Learners are left out: they serve no client requests
// until promoted. Skipped says which voters have no usable client URL.
func (z Zone) Desired(members []Member) (sets []RecordSet, skipped []string) {
	srv := RecordSet{Name: z.SRVName(), Type: TypeSRV, TTL: z.TTL}
	for _, m := range members {
		if m.Learner {
			continue
		}
		v, addr, ok := z.target(m)
		if !ok {
			skipped = append(skipped, m.Name)
			continue
		}
		srv.Values = append(srv.Values, v)
		if addr.Name != "" {
			sets = append(sets, addr)
		}
	}
	if len(srv.Values) == 0 {
		return nil, skipped
	}
	slices.Sort(srv.Values)
	srv.Values = slices.Compact(srv.Values)
	return append(sets, srv), skipped
}

// Plan is the change batch that turns current (the zone's record sets under
// the domain) into desired (Desired's). Only the agents' own records are
// touched: the SRV set, and the address records that the current or the
// desired SRV set points at; anything else under the domain stays. A desired
// set without voters (nil) plans nothing: an empty member list is never a
// reason to withdraw every record.
func (z Zone) Plan(current, desired []RecordSet) []Change {
	if len(desired) == 0 {
		return nil
	}
	owned := z.owned(current, desired)
	var ups, dels []Change
	for _, d := range desired {
		if c, ok := find(current, d.Name, d.Type); !ok || !c.equal(d) {
			ups = append(ups, Change{Action: Upsert, Set: d})
		}
	}
	for _, c := range current {
		if !owned(c) {
			continue
		}
		if _, ok := find(desired, c.Name, c.Type); !ok {
			dels = append(dels, Change{Action: Delete, Set: c})
		}
	}
	return append(sortChanges(ups), sortChanges(dels)...)
}

// Withdraw is the change batch that takes self out of current before it
// leaves: its SRV value (the SRV set is deleted with its last value) and its
// address record. Nil when current holds neither.
func (z Zone) Withdraw(current []RecordSet, self Member) []Change {
	v, addr, ok := z.target(self)
	if !ok {
		return nil
	}
	var out []Change
	if a, ok := find(current, addr.Name, addr.Type); ok && addr.Name != "" {
		out = append(out, Change{Action: Delete, Set: a})
	}
	if srv, ok := find(current, z.SRVName(), TypeSRV); ok && slices.Contains(srv.Values, v) {
		rest := srv
		rest.Values = slices.DeleteFunc(slices.Clone(srv.Values), func(s string) bool { return s == v })
		if len(rest.Values) == 0 {
			out = append(out, Change{Action: Delete, Set: srv})
		} else {
			out = append([]Change{{Action: Upsert, Set: rest}}, out...)
		}
	}
	return out
}

// owned reports whether a current record set is the agents' to change.
func (z Zone) owned(current, desired []RecordSet) func(RecordSet) bool {
	targets := map[string]bool{}
	for _, sets := range [][]RecordSet{current, desired} {
		if srv, ok := find(sets, z.SRVName(), TypeSRV); ok {
			for _, v := range srv.Values {
				if f := strings.Fields(v); len(f) == 4 {
					targets[strings.ToLower(fqdn(f[3]))] = true
				}
			}
		}
	}
	return func(r RecordSet) bool {
		switch r.Type {
		case TypeSRV:
			return r.Name == z.SRVName()
		case TypeA, TypeAAAA:
			return targets[r.Name] && strings.HasSuffix(r.Name, "."+fqdn(z.Domain))
		}
		return false
	}
}

// Normalize makes a record set read from the zone comparable with the
// planner's: lower-case name with a trailing dot, sorted values, SRV
// targets absolute and lower case.
func Normalize(r RecordSet) RecordSet {
	r.Name = strings.ToLower(fqdn(r.Name))
	vals := make([]string, 0, len(r.Values))
	for _, v := range r.Values {
		if r.Type == TypeSRV {
			if f := strings.Fields(v); len(f) == 4 {
				f[3] = strings.ToLower(fqdn(f[3]))
				v = strings.Join(f, " ")
			}
		}
		vals = append(vals, v)
	}
	slices.Sort(vals)
	r.Values = vals
	return r
}

func find(sets []RecordSet, name, typ string) (RecordSet, bool) {
	for _, s := range sets {
		if s.Name == name && s.Type == typ {
			return s, true
		}
	}
	return RecordSet{}, false
}

// sortChanges orders a batch's changes: address records before the SRV set
// (Route 53 applies a batch at once; the order only makes it readable).
func sortChanges(cs []Change) []Change {
	slices.SortFunc(cs, func(a, b Change) int {
		if (a.Set.Type == TypeSRV) != (b.Set.Type == TypeSRV) {
			if a.Set.Type == TypeSRV {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Set.Name, b.Set.Name)
	})
	return cs
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}
