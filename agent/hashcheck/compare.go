// Package hashcheck detects etcd replicas that diverged: it compares the
// key-value hash (HashKV) of every voting member at one common revision, with
// the rule etcd's own corruption checker uses: two members are compared only
// when they answer with the same compact revision, and then their hashes must
// be equal.
//
// Compare is the rule, a pure function of the answers; CompareHashKV gathers
// the answers from a cluster and applies it. `etcd-agent status` gathers them
// over its own connections and applies Compare too.
package hashcheck

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// ErrLearner is the Answer.Err of a learner: etcd serves HashKV to voters
// only, so a learner is not compared.
var ErrLearner = errors.New("learner (etcd serves HashKV to voters only)")

// ErrNoAnswer is the Answer.Err of a member known not to answer at all (its
// error is reported elsewhere).
var ErrNoAnswer = errors.New("did not answer")

// errLearnerRPC is what a learner answers to HashKV.
var errLearnerRPC = rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner)

// Answer is what one member answered to HashKV at the check's revision.
type Answer struct {
	Endpoint string
	// Name and MemberID name the member in the results; both optional.
	Name     string
	MemberID uint64
	// Hash and CompactRevision are the member's answer when Err is nil.
	Hash            uint32
	CompactRevision int64
	// Err is why the member gave no hash: ErrLearner, ErrNoAnswer, rpctypes.ErrCompacted
	// (compacted past the revision), rpctypes.ErrFutureRev (behind it), or
	// any failure to answer.
	Err error
}

// Result is one member's line in a HashCheck.
type Result struct {
	Endpoint string `json:"endpoint"`
	Name     string `json:"name,omitempty"`
	MemberID string `json:"member_id,omitempty"` // hex, as etcdctl prints it
	// Hash is the member's HashKV as 8 hex digits, "" when it gave none.
	Hash            string `json:"hash,omitempty"`
	CompactRevision int64  `json:"compact_revision,omitempty"`
	// Compared is true when another member answered with the same compact
	// revision, so the two hashes had to be equal.
	Compared bool `json:"compared"`
	// NotCompared says why the member was not compared ("" when it was).
	NotCompared string `json:"not_compared,omitempty"`
}

// HashCheck is the outcome of one comparison.
type HashCheck struct {
	// Revision is the revision every member hashed; 0 when no member could
	// be asked.
	Revision int64    `json:"revision,omitempty"`
	Results  []Result `json:"results,omitempty"`
	// Mismatch is true when two members with the same compact revision
	// have different hashes at Revision: their data diverged.
	Mismatch bool `json:"mismatch"`
	// Description is one line for a log or a status screen, e.g.
	// "HashKV equal on 3 members at revision 42" or
	// "HashKV MISMATCH at revision 42 (compacted at 7): a, b have 0a1b2c3d; c has 9e8f7a6b".
	Description string `json:"description"`
}

// CommonRevision is the revision to compare at: the lowest of the members'
// current revisions (zeros ignored), which every member has reached. 0 when
// there is none.
func CommonRevision(revisions ...int64) int64 {
	var low int64
	for _, r := range revisions {
		if r > 0 && (low == 0 || r < low) {
			low = r
		}
	}
	return low
}

// Compare applies etcd's rule to the answers at revision rev. Members with
// the same compact revision are compared; a member whose compact revision no
// other member shares, or that gave no hash, is "not compared", never a
// mismatch. Results keep the order of answers.
func Compare(rev int64, answers []Answer) HashCheck {
	hc := HashCheck{Revision: rev}
	if len(answers) > 0 {
		hc.Results = make([]Result, len(answers))
	}
	byCompact := map[int64][]int{} // compact revision -> indexes of answers with a hash
	for i, a := range answers {
		r := Result{Endpoint: a.Endpoint, Name: a.Name}
		if a.MemberID != 0 {
			r.MemberID = fmt.Sprintf("%x", a.MemberID)
		}
		if a.Err != nil {
			r.NotCompared = reason(a.Err, rev)
		} else {
			r.Hash, r.CompactRevision = shortHash(a.Hash), a.CompactRevision
			byCompact[a.CompactRevision] = append(byCompact[a.CompactRevision], i)
		}
		hc.Results[i] = r
	}

	compacts := make([]int64, 0, len(byCompact))
	for c := range byCompact {
		compacts = append(compacts, c)
	}
	slices.Sort(compacts)
	var mismatches []string
	for _, c := range compacts {
		group := byCompact[c]
		if len(group) < 2 {
			hc.Results[group[0]].NotCompared = "no other member to compare with"
			if len(compacts) > 1 {
				hc.Results[group[0]].NotCompared = compacted(c) + ", which no other member is"
			}
			continue
		}
		byHash := map[string][]string{}
		for _, i := range group {
			hc.Results[i].Compared = true
			byHash[hc.Results[i].Hash] = append(byHash[hc.Results[i].Hash], label(hc.Results[i]))
		}
		if len(byHash) > 1 {
			mismatches = append(mismatches, fmt.Sprintf("(%s): %s", compacted(c), hashGroups(byHash)))
		}
	}
	hc.Mismatch = len(mismatches) > 0
	hc.Description = describe(hc, mismatches)
	return hc
}

// describe is the one-line Description.
func describe(hc HashCheck, mismatches []string) string {
	compared := 0
	var skipped []string
	for _, r := range hc.Results {
		if r.Compared {
			compared++
		} else {
			skipped = append(skipped, label(r)+" ("+r.NotCompared+")")
		}
	}
	var b strings.Builder
	switch {
	case hc.Mismatch:
		fmt.Fprintf(&b, "HashKV MISMATCH at revision %d %s", hc.Revision, strings.Join(mismatches, "; and "))
	case hc.Revision == 0:
		b.WriteString("HashKV not compared: no voting member answered")
	case compared == 0:
		fmt.Fprintf(&b, "HashKV not compared at revision %d: fewer than two members answered with the same compact revision", hc.Revision)
	default:
		fmt.Fprintf(&b, "HashKV equal on %d members at revision %d", compared, hc.Revision)
	}
	if len(skipped) > 0 {
		b.WriteString("; not compared: " + strings.Join(skipped, ", "))
	}
	return b.String()
}

// hashGroups prints "a, b have 0a1b2c3d; c has 9e8f7a6b", the largest group first.
func hashGroups(byHash map[string][]string) string {
	hashes := make([]string, 0, len(byHash))
	for h := range byHash {
		hashes = append(hashes, h)
	}
	slices.SortFunc(hashes, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(byHash[b]), len(byHash[a])), cmp.Compare(a, b))
	})
	parts := make([]string, len(hashes))
	for i, h := range hashes {
		verb := "has"
		if len(byHash[h]) > 1 {
			verb = "have"
		}
		parts[i] = fmt.Sprintf("%s %s %s", strings.Join(byHash[h], ", "), verb, h)
	}
	return strings.Join(parts, "; ")
}

// reason says why an answer without a hash is not compared.
func reason(err error, rev int64) string {
	switch {
	case errors.Is(err, ErrLearner), errors.Is(err, errLearnerRPC):
		return ErrLearner.Error()
	case errors.Is(err, ErrNoAnswer):
		return ErrNoAnswer.Error()
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Sprintf("compacted past revision %d", rev)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Sprintf("behind revision %d", rev)
	default:
		return "no answer: " + err.Error()
	}
}

// compacted names a compact revision as etcd reports it (-1: never compacted).
func compacted(c int64) string {
	if c < 0 {
		return "never compacted"
	}
	return fmt.Sprintf("compacted at %d", c)
}

func label(r Result) string {
	return cmp.Or(r.Name, r.MemberID, r.Endpoint)
}

func shortHash(h uint32) string { return fmt.Sprintf("%08x", h) }
