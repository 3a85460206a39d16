package rollout

import (
	"strings"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/membership"
)

const cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

func TestBundleOf(t *testing.T) {
	one, two := BundleOf([]byte(cert)), BundleOf([]byte(cert+cert))
	if one.CAs != 1 || two.CAs != 2 || one.Fingerprint == two.Fingerprint || !strings.HasPrefix(one.Fingerprint, "sha256:") {
		t.Fatalf("one %+v two %+v", one, two)
	}
	if got := two.String(); !strings.HasPrefix(got, "2 CAs sha256:") {
		t.Errorf("String = %q", got)
	}
}

func TestPlan(t *testing.T) {
	old, bundle := BundleOf([]byte(cert)), BundleOf([]byte(cert+cert))
	const self = "https://10.0.0.1:2380"
	member := func(id uint64, peer string, healthy, learner bool) membership.ClusterMember {
		return membership.ClusterMember{ID: id, Name: peer[8:16], PeerURLs: []string{peer}, Healthy: healthy, IsLearner: learner}
	}
	all := []membership.ClusterMember{
		member(1, self, true, false),
		member(2, "https://10.0.0.2:2380", true, false),
		member(3, "https://10.0.0.3:2380", true, false),
	}
	withDown := []membership.ClusterMember{all[0], all[1], member(3, "https://10.0.0.3:2380", false, false)}
	withLearner := append(all[:3:3], member(4, "https://10.0.0.4:2380", false, true))
	selfLearner := []membership.ClusterMember{member(1, self, true, true), all[1], all[2]}
	for _, tc := range []struct {
		name   string
		f      Facts
		want   Kind
		reason string
	}{
		{"same bundle", Facts{Started: bundle, Current: bundle, LocalReady: true, SelfPeerURL: self, Members: all}, None, ""},
		{"started bundle unknown", Facts{Current: bundle, LocalReady: true, SelfPeerURL: self, Members: all}, None, ""},
		{"bundle changed, all healthy", Facts{Started: old, Current: bundle, LocalReady: true, SelfPeerURL: self, Members: all}, Restart, "restarting etcd to load it"},
		{"bundle changed back to one CA", Facts{Started: bundle, Current: old, LocalReady: true, SelfPeerURL: self, Members: all}, Restart, "etcd started with 2 CAs"},
		{"another voter down", Facts{Started: old, Current: bundle, LocalReady: true, SelfPeerURL: self, Members: withDown}, Wait, "not answering: [10.0.0.3]"},
		{"a learner down does not block", Facts{Started: old, Current: bundle, LocalReady: true, SelfPeerURL: self, Members: withLearner}, Restart, ""},
		{"local member not ready", Facts{Started: old, Current: bundle, SelfPeerURL: self, Members: all}, Wait, "local member to be healthy"},
		{"local member a learner", Facts{Started: old, Current: bundle, LocalReady: true, SelfPeerURL: self, Members: selfLearner}, Wait, "learner"},
		{"local member not listed", Facts{Started: old, Current: bundle, LocalReady: true, SelfPeerURL: "https://10.0.0.9:2380", Members: all}, Wait, "not in the member list"},
		{"another node holds a reboot slot", Facts{Started: old, Current: bundle, LocalReady: true, SelfPeerURL: self, Members: all, Rebooting: []string{"10.0.0.3"}},
			Wait, "waiting until 10.0.0.3, holding a reboot slot (FleetLock), is back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(tc.f)
			if got.Kind != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("Plan = %s %q, want %s containing %q", got.Kind, got.Reason, tc.want, tc.reason)
			}
		})
	}
}

func TestLeaderTarget(t *testing.T) {
	const self = "https://10.0.0.1:2380"
	ms := []membership.ClusterMember{
		{ID: 9, PeerURLs: []string{self}, Healthy: true},
		{ID: 7, PeerURLs: []string{"https://10.0.0.2:2380"}, Healthy: false},
		{ID: 5, PeerURLs: []string{"https://10.0.0.3:2380"}, Healthy: true, IsLearner: true},
		{ID: 8, PeerURLs: []string{"https://10.0.0.4:2380"}, Healthy: true},
		{ID: 6, PeerURLs: []string{"https://10.0.0.5:2380"}, Healthy: true},
	}
	if id, ok := LeaderTarget(self, ms); !ok || id != 6 {
		t.Errorf("LeaderTarget = %d %v, want 6", id, ok)
	}
	if _, ok := LeaderTarget(self, ms[:3]); ok {
		t.Error("LeaderTarget found a target among self, a down voter and a learner")
	}
}
