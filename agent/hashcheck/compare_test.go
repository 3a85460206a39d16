package hashcheck

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestCompare(t *testing.T) {
	ok := func(name string, hash uint32, compact int64) Answer {
		return Answer{Endpoint: "https://" + name + ":2379", Name: name, Hash: hash, CompactRevision: compact}
	}
	failed := func(name string, err error) Answer {
		return Answer{Endpoint: "https://" + name + ":2379", Name: name, Err: err}
	}
	cases := []struct {
		name        string
		rev         int64
		answers     []Answer
		mismatch    bool
		compared    []bool
		description string
	}{
		{
			name:        "all equal",
			rev:         42,
			answers:     []Answer{ok("a", 0xabc, 7), ok("b", 0xabc, 7), ok("c", 0xabc, 7)},
			compared:    []bool{true, true, true},
			description: "HashKV equal on 3 members at revision 42",
		},
		{
			name:        "one member diverged",
			rev:         42,
			answers:     []Answer{ok("a", 0xabc, 7), ok("b", 0xdef, 7), ok("c", 0xabc, 7)},
			mismatch:    true,
			compared:    []bool{true, true, true},
			description: "HashKV MISMATCH at revision 42 (compacted at 7): a, c have 00000abc; b has 00000def",
		},
		{
			name:        "two members never compacted, different hashes",
			rev:         5,
			answers:     []Answer{ok("a", 1, -1), ok("b", 2, -1)},
			mismatch:    true,
			compared:    []bool{true, true},
			description: "HashKV MISMATCH at revision 5 (never compacted): a has 00000001; b has 00000002",
		},
		{
			// etcd's rule: different compact revisions hash different
			// ranges, so a different hash proves nothing.
			name:     "different compact revisions are not compared",
			rev:      42,
			answers:  []Answer{ok("a", 0xabc, 7), ok("b", 0xabc, 7), ok("c", 0xdef, 9)},
			compared: []bool{true, true, false},
			description: "HashKV equal on 2 members at revision 42; " +
				"not compared: c (compacted at 9, which no other member is)",
		},
		{
			name:        "every compact revision different",
			rev:         42,
			answers:     []Answer{ok("a", 1, 7), ok("b", 2, 9)},
			compared:    []bool{false, false},
			description: "HashKV not compared at revision 42: fewer than two members answered with the same compact revision; not compared: a (compacted at 7, which no other member is), b (compacted at 9, which no other member is)",
		},
		{
			name:     "mismatch within one compact revision, another group apart",
			rev:      42,
			answers:  []Answer{ok("a", 1, 7), ok("b", 2, 7), ok("c", 3, 9)},
			mismatch: true,
			compared: []bool{true, true, false},
			description: "HashKV MISMATCH at revision 42 (compacted at 7): a has 00000001; b has 00000002; " +
				"not compared: c (compacted at 9, which no other member is)",
		},
		{
			name: "member not answering",
			rev:  42,
			answers: []Answer{ok("a", 0xabc, 7), ok("b", 0xabc, 7),
				failed("c", fmt.Errorf("hash kv: %w", errors.New("context deadline exceeded")))},
			compared:    []bool{true, true, false},
			description: "HashKV equal on 2 members at revision 42; not compared: c (no answer: hash kv: context deadline exceeded)",
		},
		{
			name:        "member compacted past the revision",
			rev:         42,
			answers:     []Answer{ok("a", 0xabc, 7), failed("b", fmt.Errorf("hash kv: %w", rpctypes.ErrCompacted)), ok("c", 0xabc, 7)},
			compared:    []bool{true, false, true},
			description: "HashKV equal on 2 members at revision 42; not compared: b (compacted past revision 42)",
		},
		{
			name:        "member behind the revision",
			rev:         42,
			answers:     []Answer{ok("a", 0xabc, 7), failed("b", rpctypes.ErrFutureRev), ok("c", 0xabc, 7)},
			compared:    []bool{true, false, true},
			description: "HashKV equal on 2 members at revision 42; not compared: b (behind revision 42)",
		},
		{
			name: "learner and silent member",
			rev:  42,
			answers: []Answer{ok("a", 0xabc, 7), failed("b", ErrLearner), ok("c", 0xabc, 7),
				failed("d", rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner)), failed("e", ErrNoAnswer)},
			compared: []bool{true, false, true, false, false},
			description: "HashKV equal on 2 members at revision 42; not compared: b (learner (etcd serves HashKV to voters only)), " +
				"d (learner (etcd serves HashKV to voters only)), e (did not answer)",
		},
		{
			name:        "single member",
			rev:         3,
			answers:     []Answer{ok("a", 1, 0)},
			compared:    []bool{false},
			description: "HashKV not compared at revision 3: fewer than two members answered with the same compact revision; not compared: a (no other member to compare with)",
		},
		{
			name:        "nobody answered",
			answers:     []Answer{failed("a", ErrNoAnswer)},
			compared:    []bool{false},
			description: "HashKV not compared: no voting member answered; not compared: a (did not answer)",
		},
		{
			name:        "nothing to ask",
			description: "HashKV not compared: no voting member answered",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := Compare(tc.rev, tc.answers)
			if hc.Mismatch != tc.mismatch || hc.Revision != tc.rev {
				t.Errorf("Mismatch %v at %d, want %v at %d", hc.Mismatch, hc.Revision, tc.mismatch, tc.rev)
			}
			var compared []bool
			for i, r := range hc.Results {
				compared = append(compared, r.Compared)
				if r.Compared != (r.NotCompared == "") {
					t.Errorf("result %d: compared %v but reason %q", i, r.Compared, r.NotCompared)
				}
				if a := tc.answers[i]; r.Endpoint != a.Endpoint || r.Name != a.Name || (a.Err == nil) != (len(r.Hash) == 8) {
					t.Errorf("result %d = %+v does not match answer %+v", i, r, a)
				}
			}
			if !slices.Equal(compared, tc.compared) {
				t.Errorf("compared = %v, want %v", compared, tc.compared)
			}
			if hc.Description != tc.description {
				t.Errorf("description:\n got %q\nwant %q", hc.Description, tc.description)
			}
		})
	}
}

func TestCommonRevision(t *testing.T) {
	for _, tc := range []struct {
		revs []int64
		want int64
	}{
		{nil, 0}, {[]int64{0}, 0}, {[]int64{9}, 9}, {[]int64{12, 9, 15}, 9}, {[]int64{0, 7, 8}, 7},
	} {
		if got := CommonRevision(tc.revs...); got != tc.want {
			t.Errorf("CommonRevision(%v) = %d, want %d", tc.revs, got, tc.want)
		}
	}
}
