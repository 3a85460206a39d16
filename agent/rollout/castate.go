package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/keys"
)

// CA rotation, as `etcd-agent ca rotate` drives it from an operator host:
// each agent records in the cluster what its member runs with (CAState);
// the command reads every member's record and allows the rotation's next
// step only once every member reached the one before (PlanRotation). The
// files themselves are pushed by the operator's config management.

// CAState is what one member runs with.
type CAState struct {
	Member string `json:"member"`
	// Trusts are the CAs of the bundle its etcd loaded at its last start
	// (pki.CAName): what it accepts from peers and clients now.
	Trusts []string `json:"trusts"`
	// IssuedBy is the CA that issued its server and peer certificates.
	IssuedBy string    `json:"issued_by"`
	At       time.Time `json:"at"`
}

func (s CAState) same(o CAState) bool {
	return s.Member == o.Member && slices.Equal(s.Trusts, o.Trusts) && s.IssuedBy == o.IssuedBy
}

// recordTimeout bounds writing this member's record.
const recordTimeout = 5 * time.Second

// RecordCAState writes st as its member's record (a plain put: each agent
// writes only its own key).
func RecordCAState(ctx context.Context, kv clientv3.KV, st CAState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	if _, err := kv.Put(ctx, keys.CAState(st.Member), string(b)); err != nil {
		return fmt.Errorf("record the CA state of %s: %w", st.Member, err)
	}
	return nil
}

// ReadCAStates reads every member's record, by member name.
func ReadCAStates(ctx context.Context, kv clientv3.KV) (map[string]CAState, error) {
	resp, err := kv.Get(ctx, keys.CAStatePrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the members' CA states: %w", err)
	}
	out := map[string]CAState{}
	for _, kv := range resp.Kvs {
		var st CAState
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, fmt.Errorf("CA state %s: %w", kv.Key, err)
		}
		out[st.Member] = st
	}
	return out, nil
}

// The rotation's steps (docs/how-it-works.md, "CA rotation").
const (
	// StepBundle: ca.crt := old and new CA; members restart to trust both.
	StepBundle = 1
	// StepNewKey: ca.key := the new key; certificates reissued by it.
	StepNewKey = 2
	// StepDropOld: ca.crt := the new CA only; members restart once more.
	StepDropOld = 3
)

// MemberRotation is where one member stands in a rotation to NewCA.
type MemberRotation struct {
	Member   string `json:"member"`
	Recorded bool   `json:"recorded"`
	// TrustsNew: its etcd trusts the new CA; TrustsOther: it trusts
	// another CA too (the old one).
	TrustsNew   bool `json:"trusts_new"`
	TrustsOther bool `json:"trusts_other"`
	// IssuedByNew: its certificates are the new CA's.
	IssuedByNew bool `json:"issued_by_new"`
	// Done is the last step this member completed (0: none).
	Done int    `json:"done"`
	At   string `json:"at,omitempty"`
}

// Rotation is every member's standing and the next step the cluster allows.
type Rotation struct {
	NewCA   string           `json:"new_ca"`
	Members []MemberRotation `json:"members"`
	// Next is the step whose files may be pushed now (0: the rotation is
	// complete).
	Next int `json:"next"`
}

// PlanRotation places every member of the cluster (names, as the member
// list gives them) in the rotation to newCA (pki.CAName).
func PlanRotation(names []string, states map[string]CAState, newCA string) Rotation {
	r := Rotation{NewCA: newCA}
	lowest := StepDropOld
	for _, name := range names {
		m := MemberRotation{Member: name}
		if st, ok := states[name]; ok {
			m.Recorded = true
			m.TrustsNew = slices.Contains(st.Trusts, newCA)
			m.TrustsOther = slices.ContainsFunc(st.Trusts, func(ca string) bool { return ca != newCA })
			m.IssuedByNew = st.IssuedBy == newCA
			m.At = st.At.UTC().Format(time.RFC3339)
			switch {
			case m.TrustsNew && m.IssuedByNew && !m.TrustsOther:
				m.Done = StepDropOld
			case m.TrustsNew && m.IssuedByNew:
				m.Done = StepNewKey
			case m.TrustsNew:
				m.Done = StepBundle
			}
		}
		lowest = min(lowest, m.Done)
		r.Members = append(r.Members, m)
	}
	if lowest < StepDropOld {
		r.Next = lowest + 1
	}
	return r
}

// Allows says why the files of step may not be pushed yet, or nil. A step
// needs every member through the one before: the new key before every
// member trusts the new CA would issue certificates that some members
// refuse; dropping the old CA before every member's certificates are the
// new CA's would cut those members off.
func (r Rotation) Allows(step int) error {
	if step < StepBundle || step > StepDropOld {
		return fmt.Errorf("step %d: the rotation has steps 1 (bundle), 2 (new key) and 3 (drop the old CA)", step)
	}
	var behind []string
	for _, m := range r.Members {
		if m.Done < step-1 {
			what := "no record (is its agent running, and new enough to record it?)"
			if m.Recorded {
				what = fmt.Sprintf("done step %d", m.Done)
			}
			behind = append(behind, m.Member+": "+what)
		}
	}
	if len(behind) > 0 {
		return fmt.Errorf("step %d refused: every member must have completed step %d first (%s)", step, step-1, strings.Join(behind, "; "))
	}
	return nil
}
