package rollout

import (
	"strings"
	"testing"
)

func TestPlanRotation(t *testing.T) {
	const oldCA, newCA = "etcd-agent CA sha256:aaaa", "etcd-agent CA 2 sha256:bbbb"
	names := []string{"n1", "n2", "n3"}
	st := func(name string, issuer string, trusts ...string) CAState {
		return CAState{Member: name, Trusts: trusts, IssuedBy: issuer}
	}
	all := func(issuer string, trusts ...string) map[string]CAState {
		return map[string]CAState{"n1": st("n1", issuer, trusts...), "n2": st("n2", issuer, trusts...), "n3": st("n3", issuer, trusts...)}
	}
	for _, c := range []struct {
		name    string
		states  map[string]CAState
		next    int
		refused map[int]string // step: part of the refusal
	}{
		{"before the rotation", all(oldCA, oldCA), 1,
			map[int]string{2: "n1: done step 0; n2: done step 0; n3: done step 0", 3: "every member must have completed step 2 first"}},
		// One member has not restarted with the bundle yet: the new key
		// would issue certificates it refuses.
		{"step 1 on two of three", map[string]CAState{"n1": st("n1", oldCA, oldCA, newCA), "n2": st("n2", oldCA, oldCA, newCA), "n3": st("n3", oldCA, oldCA)}, 1,
			map[int]string{2: "step 2 refused: every member must have completed step 1 first (n3: done step 0)"}},
		{"step 1 everywhere", all(oldCA, oldCA, newCA), 2, map[int]string{3: "n1: done step 1"}},
		// The rule: the old CA is dropped only once every member
		// runs with the new bundle and the new CA's certificates.
		{"step 2 on all but one", map[string]CAState{"n1": st("n1", newCA, oldCA, newCA), "n2": st("n2", newCA, oldCA, newCA), "n3": st("n3", oldCA, oldCA, newCA)}, 2,
			map[int]string{3: "(n3: done step 1)"}},
		{"step 2 everywhere", all(newCA, oldCA, newCA), 3, nil},
		{"a member without a record", map[string]CAState{"n1": st("n1", newCA, oldCA, newCA), "n2": st("n2", newCA, oldCA, newCA)}, 1,
			map[int]string{3: "n3: no record", 2: "n3: no record"}},
		{"done", all(newCA, newCA), 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := PlanRotation(names, c.states, newCA)
			if r.Next != c.next {
				t.Errorf("next step %d, want %d: %+v", r.Next, c.next, r.Members)
			}
			for step := StepBundle; step <= StepDropOld; step++ {
				err := r.Allows(step)
				want, refused := c.refused[step]
				switch {
				case refused && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("step %d: %v, want a refusal with %q", step, err, want)
				case !refused && step <= max(c.next, 1) && err != nil:
					t.Errorf("step %d refused: %v", step, err)
				}
			}
		})
	}
	if err := PlanRotation(names, nil, newCA).Allows(4); err == nil {
		t.Error("step 4 allowed")
	}
}
