package recovery

import (
	"strings"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/refusal"
)

func TestWALRefusal(t *testing.T) {
	const c1, c2 = 0xc1, 0xc2
	tail := func(term, index uint64) datadir.Tail {
		return datadir.Tail{ClusterID: c1, LastTerm: term, LastIndex: index, Commit: index - 1}
	}
	answered := func(name string, tl datadir.Tail) MemberWAL {
		return MemberWAL{Name: name, Address: "https://" + name + ":2383", Answered: true, HasMember: true, Tail: tl}
	}
	silent := MemberWAL{Name: "n5", Address: "https://n5:2383", Err: "connection refused"}
	for _, c := range []struct {
		name string
		f    WALFacts
		want string // "" for go ahead, else a part of the refusal
	}{
		{"every member answered, none newer", WALFacts{Self: "n1", Local: tail(3, 100),
			Members: []MemberWAL{answered("n2", tail(3, 100)), answered("n3", tail(3, 90))}}, ""},
		// The case: equal committed index, one more entry appended.
		{"a follower appended one more entry", WALFacts{Self: "n1", Local: tail(3, 100),
			Members: []MemberWAL{answered("n2", tail(3, 101)), answered("n3", tail(3, 90))}},
			"member n2 holds newer entries"},
		{"the newest of several is named", WALFacts{Self: "n1", Local: tail(3, 100),
			Members: []MemberWAL{answered("n2", tail(3, 101)), answered("n3", tail(4, 101))}},
			"Run `etcd-agent recover --from-member` on n3"},
		{"a higher term wins over a longer log", WALFacts{Self: "n1", Local: tail(3, 120),
			Members: []MemberWAL{answered("n2", tail(4, 110))}}, "member n2 holds newer"},
		{"--force goes ahead past newer entries", WALFacts{Self: "n1", Local: tail(3, 100), Force: true,
			Members: []MemberWAL{answered("n2", tail(3, 101))}}, ""},
		{"a silent member refuses", WALFacts{Self: "n1", Local: tail(3, 100),
			Members: []MemberWAL{answered("n2", tail(3, 90)), silent}}, "agents of n5 (https://n5:2383: connection refused) did not answer"},
		{"--force does not excuse a silent member", WALFacts{Self: "n1", Local: tail(3, 100), Force: true,
			Members: []MemberWAL{silent}}, "--lost NAME"},
		{"a silent member declared lost", WALFacts{Self: "n1", Local: tail(3, 100), Lost: []string{"n5"},
			Members: []MemberWAL{answered("n2", tail(3, 90)), silent}}, ""},
		{"--lost of an unknown name", WALFacts{Self: "n1", Local: tail(3, 100), Lost: []string{"n9"},
			Members: []MemberWAL{answered("n2", tail(3, 90))}}, "--lost n9: no other member n9"},
		// Issue 20 rule 2, static discovery: n2 reached a recovered
		// cluster and joined it, so this would be a second recovery.
		{"a member now in another cluster: already recovered", WALFacts{Self: "n1", Local: tail(3, 100),
			Members: []MemberWAL{answered("n2", datadir.Tail{ClusterID: c2, LastTerm: 9, LastIndex: 900}), answered("n3", tail(3, 90))}},
			"n2 (cluster c2) now hold data of another cluster: the lost cluster c1 was already recovered"},
		{"a member in another cluster declared lost", WALFacts{Self: "n1", Local: tail(3, 100), Lost: []string{"n2"},
			Members: []MemberWAL{answered("n2", datadir.Tail{ClusterID: c2, LastTerm: 9, LastIndex: 900})}}, ""},
		{"a node without data", WALFacts{Self: "n1", Local: tail(3, 100),
			Members: []MemberWAL{{Name: "n2", Answered: true}}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := WALRefusal(c.f)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && !refusal.Is(err):
				t.Fatalf("WALRefusal = %v, want a refusal (refusal.Error) with %q", err, c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("refusal %q, want it to contain %q", err, c.want)
			}
		})
	}
}
