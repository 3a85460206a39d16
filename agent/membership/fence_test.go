package membership

import (
	"strings"
	"testing"
	"time"
)

func TestFence(t *testing.T) {
	started := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	blank := func(n string) Founder { return Founder{Name: n, State: FounderBlank} }
	ready := func(n string) Founder { return Founder{Name: n, State: FounderReady} }
	etcdSelf := func(n string, self SelfInList) Founder { return Founder{Name: n, State: FounderEtcd, Self: self} }
	etcd := func(n string) Founder { return etcdSelf(n, SelfUnstarted) }
	tests := []struct {
		name   string
		facts  FenceFacts
		want   FenceKind
		reason string
	}{
		{"registry: first boot", FenceFacts{Registry: &RegistryFormation{}}, FenceBootstrap, "no formation"},
		{"registry: formed", FenceFacts{Registry: &RegistryFormation{Formed: true, FormedDetail: "cluster 1a by etcd-1"}}, FenceJoin, "cluster 1a by etcd-1"},
		{"registry: my past self started", FenceFacts{Registry: &RegistryFormation{SelfStarted: true, SelfStartedAt: started}}, FenceJoin, "2026-11-30T10:00:00Z"},
		{"registry: started and formed", FenceFacts{Registry: &RegistryFormation{SelfStarted: true, SelfStartedAt: started, Formed: true}}, FenceJoin, "never with its old identity"},
		{"registry: started, never ran (marker, no WAL): bootstrap again", FenceFacts{Registry: &RegistryFormation{SelfStarted: true, SelfStartedAt: started, SelfNeverRan: true}}, FenceBootstrap, "never wrote a WAL"},
		{"registry: started, never ran, but formed: join", FenceFacts{Registry: &RegistryFormation{SelfStarted: true, SelfStartedAt: started, SelfNeverRan: true, Formed: true, FormedDetail: "cluster 1a by etcd-2"}}, FenceJoin, "cluster 1a by etcd-2"},
		{"registry: started, never ran, a cluster answers: join", FenceFacts{Registry: &RegistryFormation{SelfStarted: true, SelfNeverRan: true}, ClusterAnswers: true}, FenceJoin, "answers"},
		{"registry: a cluster answers though nothing is recorded", FenceFacts{Registry: &RegistryFormation{}, ClusterAnswers: true}, FenceJoin, "answers"},
		{"static: every founder blank: ready", FenceFacts{Founders: []Founder{blank("a"), blank("b")}}, FenceReady, "every other founder (2)"},
		{"static: others ready: ready", FenceFacts{Founders: []Founder{ready("a"), blank("b")}}, FenceReady, "ready to bootstrap"},
		{"static: an etcd before ready means formed", FenceFacts{Founders: []Founder{blank("a"), etcd("b")}}, FenceJoin, "b holds the cluster's data"},
		{"static: an etcd that lists this member as started: join, ready or not", FenceFacts{SelfReady: true, Founders: []Founder{ready("a"), etcdSelf("b", SelfStarted)}}, FenceJoin, "started before"},
		{"static: ready and all ready: bootstrap", FenceFacts{SelfReady: true, Founders: []Founder{ready("a"), ready("b")}}, FenceBootstrap, "every other founder (2) is ready"},
		{"static: ready and one already started: bootstrap", FenceFacts{SelfReady: true, Founders: []Founder{ready("a"), etcd("b")}}, FenceBootstrap, "after every founder was ready"},
		{"static: ready, one started, one blank (it lost its record): bootstrap", FenceFacts{SelfReady: true, Founders: []Founder{blank("a"), etcd("b")}}, FenceBootstrap, "founder b started"},
		{"static: ready, one started, one silent: bootstrap", FenceFacts{SelfReady: true, Founders: []Founder{{Name: "a", State: FounderNoAnswer}, etcd("b")}}, FenceBootstrap, "founder b started"},
		{"static: ready, a cluster answers listing this member unstarted: bootstrap", FenceFacts{SelfReady: true, ClusterAnswers: true, Founders: []Founder{etcd("a"), etcd("b")}}, FenceBootstrap, "founder a, b started"},
		{"static: ready, a cluster without this member: join", FenceFacts{SelfReady: true, Founders: []Founder{etcdSelf("a", SelfAbsent), ready("b")}}, FenceJoin, "without this member"},
		{"static: ready, an etcd whose list was not read: wait", FenceFacts{SelfReady: true, Founders: []Founder{etcdSelf("a", SelfUnknown), ready("b")}}, FenceWait, "member list"},
		{"static: ready, one still blank: wait", FenceFacts{SelfReady: true, Founders: []Founder{blank("a"), ready("b")}}, FenceWait, "waiting for founder a to be ready too"},
		{"static: silence means wait, even with data seen", FenceFacts{Founders: []Founder{{Name: "a", State: FounderNoAnswer}, etcd("b")}}, FenceWait, "waiting for founder a"},
		{"static: ready, then one falls silent: wait", FenceFacts{SelfReady: true, Founders: []Founder{{Name: "a", State: FounderNoAnswer}}}, FenceWait, "a to answer"},
		{"static: ready, the others back blank after a silence: wait, never alone", FenceFacts{SelfReady: true, Founders: []Founder{blank("a"), blank("b")}}, FenceWait, "to be ready too"},
		{"static: a cluster answers", FenceFacts{Founders: []Founder{blank("a")}, ClusterAnswers: true}, FenceJoin, "answers"},
		{"static: single founder", FenceFacts{Founders: []Founder{}}, FenceReady, "(0)"},
		{"static: single founder, ready", FenceFacts{SelfReady: true, Founders: []Founder{}}, FenceBootstrap, "(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fence(tt.facts)
			if got.Kind != tt.want || !strings.Contains(got.Reason, tt.reason) {
				t.Fatalf("Fence = %s (%s), want %s with %q", got.Kind, got.Reason, tt.want, tt.reason)
			}
		})
	}
}
