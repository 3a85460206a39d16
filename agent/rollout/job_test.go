package rollout

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
)

// A survey reads as the planners' facts: healthy is answered, caught up is
// applied what the leader had committed.
func TestSurveyAsFacts(t *testing.T) {
	s := cluster.Survey{Members: []cluster.Member{
		{ID: 1, Name: "a", Leader: 1, RaftIndex: 100, AppliedIndex: 100, Quota: 8},
		{ID: 2, Name: "b", Leader: 1, RaftIndex: 100, AppliedIndex: 90, Quota: 4},
		{ID: 3, Name: "c", Err: "no answer", Quota: 0},
		{ID: 4, IsLearner: true, Leader: 1, AppliedIndex: 100, Quota: 4},
	}}
	ms := members(s)
	if !ms[0].Healthy || !ms[1].Healthy || ms[2].Healthy || !ms[3].IsLearner {
		t.Errorf("members = %+v", ms)
	}
	want := []MemberQuota{
		{ID: 1, Name: "a", Healthy: true, CaughtUp: true, Quota: 8},
		{ID: 2, Name: "b", Healthy: true, CaughtUp: false, Quota: 4},
		{ID: 3, Name: "c"},
		{ID: 4, Learner: true, Healthy: true, CaughtUp: true, Quota: 4},
	}
	got := quotas(s)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("quotas[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if ok, _ := MayRaiseQuotaUnlocked(4, 8, got); ok {
		t.Error("b is not caught up: no turn")
	}
}

func TestLoadedBundle(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(ca, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l := NewLoadedBundle(ca)
	if l.OnDisk().Known() {
		t.Fatal("no ca.crt: unknown")
	}
	write(cert)
	one := BundleOf([]byte(cert))
	// An adopted etcd of an earlier agent is assumed to run the bundle on disk.
	l.BeforeStart()
	l.AfterEnsure(runtime.ActionAdopted)
	if !reflect.DeepEqual(l.Started(), one) {
		t.Fatalf("adopted: started %v, want %v", l.Started(), one)
	}
	// The bundle changes; the supervisor adopting the same etcd keeps
	// what it loaded.
	write(cert + cert)
	l.BeforeStart()
	l.AfterEnsure(runtime.ActionAdopted)
	if !reflect.DeepEqual(l.Started(), one) {
		t.Fatalf("adopted again: started %v, want %v", l.Started(), one)
	}
	if need, _ := Needed(l.Started(), l.OnDisk()); !need {
		t.Fatal("changed bundle: restart needed")
	}
	// A start loads what was on disk just before it.
	l.BeforeStart()
	l.AfterEnsure(runtime.ActionStarted)
	if !reflect.DeepEqual(l.Started(), BundleOf([]byte(cert+cert))) {
		t.Fatalf("started: %v", l.Started())
	}
}
