package membership

import (
	"strings"
	"testing"
	"time"
)

func TestFence(t *testing.T) {
	started := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	blank := func(n string) Founder { return Founder{Name: n, State: FounderBlank} }
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
		{"registry: a cluster answers though nothing is recorded", FenceFacts{Registry: &RegistryFormation{}, ClusterAnswers: true}, FenceJoin, "answers"},
		{"static: every founder blank", FenceFacts{Founders: []Founder{blank("a"), blank("b")}}, FenceBootstrap, "every other founder (2)"},
		{"static: a founder is bootstrapping now", FenceFacts{Founders: []Founder{blank("a"), {Name: "b", State: FounderBootstrapping}}}, FenceBootstrap, "no formed cluster"},
		{"static: a founder has a formed cluster", FenceFacts{Founders: []Founder{blank("a"), {Name: "b", State: FounderFormed, Detail: "raft term 4"}}}, FenceJoin, "b (raft term 4)"},
		{"static: formed wins over silence", FenceFacts{Founders: []Founder{{Name: "a", State: FounderNoAnswer}, {Name: "b", State: FounderFormed}}}, FenceJoin, "formed"},
		{"static: a founder does not answer", FenceFacts{Founders: []Founder{blank("a"), {Name: "b", State: FounderNoAnswer}}}, FenceWait, "waiting for founder b"},
		{"static: single founder", FenceFacts{Founders: []Founder{}}, FenceBootstrap, "(0)"},
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
