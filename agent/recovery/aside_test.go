package recovery

import (
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/discovery"
)

func TestDecideAside(t *testing.T) {
	const old = 0xc1
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	grace := 30 * time.Second
	done := &discovery.Recovery{Generation: 1, State: discovery.RecoveryDone, By: "etcd-10-0-1-5", ClusterID: "c2", Replaced: []string{"c1"}}
	started := &discovery.Recovery{Generation: 1, State: discovery.RecoveryStarted, By: "etcd-10-0-1-5", ClusterID: "c2", Replaced: []string{"c1"}}
	other := &discovery.Recovery{Generation: 1, State: discovery.RecoveryDone, By: "etcd-10-0-1-5", ClusterID: "c3", Replaced: []string{"c9"}}
	for _, tc := range []struct {
		name   string
		facts  AsideFacts
		want   AsideVerdict
		reason string // substring of the reason
	}{
		{"no record", AsideFacts{DataClusterID: old, NoQuorumSince: now.Add(-time.Hour)}, AsideKeep, ""},
		{"the record names another cluster", AsideFacts{Record: other, DataClusterID: old, NoQuorumSince: now.Add(-time.Hour)}, AsideKeep, ""},
		{"a linearizable read through the member succeeds", AsideFacts{Record: done, DataClusterID: old,
			ReadVia: "https://10.0.1.6:2379", NoQuorumSince: now.Add(-time.Hour)}, AsideKeep, "a linearizable read through https://10.0.1.6:2379"},
		{"before a restart: the running members make a quorum with this one", AsideFacts{Record: done, DataClusterID: old,
			QuorumWithSelf: "2 of 3 voters run, this one included", NoQuorumSince: now.Add(-time.Hour)}, AsideKeep, "has a quorum with this member (2 of 3"},
		{"unhealthy, no quorum for less than the grace", AsideFacts{Record: done, DataClusterID: old,
			NoQuorumSince: now.Add(-10 * time.Second)}, AsideWait, "for 10s of the 30s grace"},
		{"no quorum not seen yet", AsideFacts{Record: done, DataClusterID: old}, AsideWait, "of the 30s grace"},
		{"the recovery is still started", AsideFacts{Record: started, DataClusterID: old,
			NoQuorumSince: now.Add(-time.Hour)}, AsideWait, "still started"},
		{"started, and the old cluster serves", AsideFacts{Record: started, DataClusterID: old,
			ReadVia: "https://10.0.1.7:2379", NoQuorumSince: now.Add(-time.Hour)}, AsideKeep, "linearizable read"},
		{"no quorum for longer than the grace", AsideFacts{Record: done, DataClusterID: old,
			NoQuorumSince: now.Add(-31 * time.Second)}, AsideMove, "no quorum of cluster c1 answered for 31s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.facts.Now, tc.facts.Grace = now, grace
			d := DecideAside(tc.facts)
			if d.Verdict != tc.want || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("DecideAside = %s (%q), want %s with a reason containing %q", d.Verdict, d.Reason, tc.want, tc.reason)
			}
		})
	}
}
