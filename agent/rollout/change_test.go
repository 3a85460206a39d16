package rollout

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/membership"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		bad  bool
	}{
		{in: "v3.7.3", want: Version{3, 7, 3}},
		{in: "3.6.16", want: Version{3, 6, 16}},
		{in: "3.6", want: Version{3, 6, 0}},
		{in: "v3.7.0-rc.1", want: Version{3, 7, 0}},
		{in: "latest", bad: true},
		{in: "3", bad: true},
		{in: "v3.x.1", bad: true},
	} {
		got, err := ParseVersion(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseVersion(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestImageVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when there is no version
	}{
		{"gcr.io/etcd-development/etcd:v3.7.3", "v3.7.3"},
		{"localhost:5000/etcd:v3.6.16", "v3.6.16"},
		{"quay.io/coreos/etcd:v3.6.16@sha256:abcd", "v3.6.16"},
		{"localhost:5000/etcd", ""},
		{"etcd@sha256:abcd", ""},
		{"gcr.io/etcd-development/etcd:latest", ""},
	} {
		v, err := ImageVersion(tc.in)
		got := ""
		if err == nil {
			got = v.String()
		} else if !strings.Contains(err.Error(), tc.in) {
			t.Errorf("ImageVersion(%q) error %q does not name the image", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("ImageVersion(%q) = %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckUpgrade(t *testing.T) {
	v := func(s string) Version {
		x, err := ParseVersion(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, tc := range []struct {
		name, cluster, target, downgrade string
		refused                          string // "" when allowed
	}{
		{"patch up", "3.7.0", "v3.7.4", "", ""},
		{"patch down", "3.7.0", "v3.7.1", "", ""},
		{"one minor up", "3.6.0", "v3.7.3", "", ""},
		{"back to the cluster's minor mid-upgrade", "3.6.0", "v3.6.16", "", ""},
		{"two minors up", "3.5.0", "v3.7.3", "", "skips a minor version: the cluster runs 3.5 and etcd upgrades one minor version at a time; roll out the latest v3.6.x first"},
		{"minor down", "3.7.0", "v3.6.16", "", "downgrade from the cluster's 3.7: etcd allows it only through its downgrade procedure (`etcdctl downgrade validate 3.6`"},
		{"minor down with the downgrade enabled", "3.7.0", "v3.6.16", "3.6", ""},
		{"minor down, another downgrade enabled", "3.7.0", "v3.6.16", "3.5", "downgrade"},
		{"two minors down", "3.7.0", "v3.5.24", "3.6", "more than one minor version below"},
		{"major change", "3.7.0", "v4.0.0", "", "another major version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckUpgrade(v(tc.cluster), v(tc.target), tc.downgrade)
			if (got == "") != (tc.refused == "") || !strings.Contains(got, tc.refused) {
				t.Errorf("CheckUpgrade = %q, want %q", got, tc.refused)
			}
		})
	}
}

func TestPlanChange(t *testing.T) {
	const self = "https://10.0.0.1:2380"
	member := func(id uint64, peer string, healthy bool) membership.ClusterMember {
		return membership.ClusterMember{ID: id, Name: peer[8:16], PeerURLs: []string{peer}, Healthy: healthy}
	}
	all := []membership.ClusterMember{member(1, self, true), member(2, "https://10.0.0.2:2380", true), member(3, "https://10.0.0.3:2380", true)}
	withDown := []membership.ClusterMember{all[0], all[1], member(3, "https://10.0.0.3:2380", false)}
	spec := func(image string, quota int64) etcdconf.Spec {
		return etcdconf.Spec{Name: "n1", DataDir: "/d", NodeIP: netip.MustParseAddr("10.0.0.1"), CertDir: "/p", Image: image, QuotaBackendBytes: quota}
	}
	const v36, v37, v35 = "gcr.io/etcd-development/etcd:v3.6.16", "gcr.io/etcd-development/etcd:v3.7.3", "gcr.io/etcd-development/etcd:v3.5.24"
	boot := spec(v37, 1<<26)
	boot.InitialCluster, boot.InitialClusterState = "n1=https://10.0.0.1:2380", "existing"
	for _, tc := range []struct {
		name             string
		applied, desired etcdconf.Spec
		cluster          string
		members          []membership.ClusterMember
		notReady         bool
		rebooting        []string
		want             Kind
		reason           string
	}{
		{"nothing changed", spec(v37, 1<<26), spec(v37, 1<<26), "3.7.0", all, false, nil, None, ""},
		{"only bootstrap settings differ", spec(v37, 1<<26), boot, "3.7.0", all, false, nil, None, ""},
		{"quota changed", spec(v37, 1<<26), spec(v37, 1<<27), "3.7.0", all, false, nil, Restart, "--quota-backend-bytes: 67108864 → 134217728"},
		{"quota changed, cluster version unknown", spec(v37, 1<<26), spec(v37, 1<<27), "", all, false, nil, Restart, ""},
		{"quota changed, a voter down", spec(v37, 1<<26), spec(v37, 1<<27), "3.7.0", withDown, false, nil, Wait, "not answering"},
		{"quota changed, local not ready", spec(v37, 1<<26), spec(v37, 1<<27), "3.7.0", all, true, nil, Wait, "local member to be healthy"},
		{"upgrade one minor", spec(v36, 1<<26), spec(v37, 1<<26), "3.6.0", all, false, nil, Restart, "image " + v36 + " → " + v37},
		{"upgrade, cluster version unknown", spec(v36, 1<<26), spec(v37, 1<<26), "", all, false, nil, Wait, "cluster version"},
		{"upgrade two minors", spec(v35, 1<<26), spec(v37, 1<<26), "3.5.0", all, false, nil, Refuse, "skips a minor version"},
		{"downgrade", spec(v37, 1<<26), spec(v36, 1<<26), "3.7.0", all, false, nil, Refuse, "refused: etcd v3.6.16 is a downgrade"},
		{"refused even with a voter down", spec(v37, 1<<26), spec(v36, 1<<26), "3.7.0", withDown, false, nil, Refuse, "downgrade"},
		{"quota changed, another node holds a reboot slot", spec(v37, 1<<26), spec(v37, 1<<27), "3.7.0", all, false, []string{"n3"}, Wait, "waiting until n3, holding a reboot slot"},
		{"untagged image", spec(v37, 1<<26), spec("localhost/etcd", 1<<26), "3.7.0", all, false, nil, Refuse, "tag the image vMAJOR.MINOR.PATCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanChange(ChangeFacts{Applied: tc.applied, Desired: tc.desired, ClusterVersion: tc.cluster,
				LocalReady: !tc.notReady, SelfPeerURL: self, Members: tc.members, Rebooting: tc.rebooting})
			if got.Kind != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("PlanChange = %s %q, want %s containing %q", got.Kind, got.Reason, tc.want, tc.reason)
			}
		})
	}
}

// During etcd's downgrade procedure a member goes to the older etcd only
// once etcd has lowered its storage version.
func TestPlanChangeDowngradeWaitsForStorage(t *testing.T) {
	const self = "https://10.0.0.1:2380"
	all := []membership.ClusterMember{
		{ID: 1, Name: "n1", PeerURLs: []string{self}, Healthy: true},
		{ID: 2, Name: "n2", PeerURLs: []string{"https://10.0.0.2:2380"}, Healthy: true},
	}
	applied := etcdconf.Spec{Name: "n1", DataDir: "/d", NodeIP: netip.MustParseAddr("10.0.0.1"), CertDir: "/p", Image: "etcd:v3.7.3"}
	desired := applied
	desired.Image = "etcd:v3.6.16"
	f := ChangeFacts{Applied: applied, Desired: desired, ClusterVersion: "3.6.0", DowngradeTarget: "3.6", StorageVersion: "3.7.0",
		LocalReady: true, SelfPeerURL: self, Members: all}
	if got := PlanChange(f); got.Kind != Wait || !strings.Contains(got.Reason, "storage version to 3.6 (it is 3.7)") {
		t.Errorf("storage 3.7: PlanChange = %s %q, want wait for the storage version", got.Kind, got.Reason)
	}
	f.StorageVersion = "3.6.0"
	if got := PlanChange(f); got.Kind != Restart {
		t.Errorf("storage 3.6: PlanChange = %s %q, want restart", got.Kind, got.Reason)
	}
	f.ClusterVersion, f.DowngradeTarget, f.StorageVersion = "3.7.0", "", "3.7.0"
	if got := PlanChange(f); got.Kind != Refuse {
		t.Errorf("no downgrade enabled: PlanChange = %s %q, want refuse", got.Kind, got.Reason)
	}
}

func TestDifferences(t *testing.T) {
	a := etcdconf.Spec{Name: "n1", DataDir: "/d", NodeIP: netip.MustParseAddr("10.0.0.1"), CertDir: "/p", ExtraFlags: []string{"--max-txn-ops=256"}}
	b := a
	b.ExtraFlags = []string{"--experimental-x=1"}
	b.SnapshotCount = 5000
	got := Differences(a, b)
	want := []string{"--experimental-x: (unset) → 1", "--max-txn-ops: 256 → (unset)", "--snapshot-count: (unset) → 5000"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Differences = %q, want %q", got, want)
	}
}

// A change that failed on one member is not tried on any other, even with
// the whole cluster healthy; another change is.
func TestPlanChangeFailedElsewhere(t *testing.T) {
	const self = "https://10.0.0.1:2380"
	all := []membership.ClusterMember{
		{ID: 1, Name: "n1", PeerURLs: []string{self}, Healthy: true},
		{ID: 2, Name: "n2", PeerURLs: []string{"https://10.0.0.2:2380"}, Healthy: true},
		{ID: 3, Name: "n3", PeerURLs: []string{"https://10.0.0.3:2380"}, Healthy: true},
	}
	base := etcdconf.Spec{Name: "n1", DataDir: "/d", NodeIP: netip.MustParseAddr("10.0.0.1"), CertDir: "/p", Image: "etcd:v3.7.3"}
	desired := base
	desired.Image = "etcd:v3.7.4"
	f := ChangeFacts{Applied: base, Desired: desired, ClusterVersion: "3.7.0", LocalReady: true, SelfPeerURL: self, Members: all,
		Failed: "etcd-3 was not healthy within 2m0s with it (rolled back)"}
	if got := PlanChange(f); got.Kind != Refuse || !strings.Contains(got.Reason, "not tried again: etcd-3 was not healthy") {
		t.Errorf("PlanChange = %s %q, want refuse naming the failure", got.Kind, got.Reason)
	}
	f.Failed = ""
	if got := PlanChange(f); got.Kind != Restart {
		t.Errorf("PlanChange without a failure = %s %q, want restart", got.Kind, got.Reason)
	}
}

func TestOnlyRaisesQuota(t *testing.T) {
	s := etcdconf.Spec{Name: "n1", DataDir: "/d", NodeIP: netip.MustParseAddr("10.0.0.1"), CertDir: "/p", QuotaBackendBytes: 64 << 20}
	up, down, more := s, s, s
	up.QuotaBackendBytes, down.QuotaBackendBytes = 256<<20, 32<<20
	more.QuotaBackendBytes, more.SnapshotCount = 256<<20, 5000
	for _, tc := range []struct {
		name    string
		desired etcdconf.Spec
		want    bool
	}{{"raise", up, true}, {"lower", down, false}, {"raise and more", more, false}, {"nothing", s, false}} {
		if got := OnlyRaisesQuota(s, tc.desired); got != tc.want {
			t.Errorf("%s: OnlyRaisesQuota = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMayRaiseQuotaUnlocked(t *testing.T) {
	const old, want = 64 << 20, 256 << 20
	m := func(id uint64, healthy bool, quota int64) MemberQuota {
		return MemberQuota{ID: id, Name: fmt.Sprintf("n%d", id), Healthy: healthy, CaughtUp: healthy, Quota: quota}
	}
	for _, tc := range []struct {
		name    string
		self    uint64
		members []MemberQuota
		ok      bool
		reason  string
	}{
		{"lowest goes first", 1, []MemberQuota{m(1, true, old), m(2, true, old), m(3, true, old)}, true, ""},
		{"second waits for the first", 2, []MemberQuota{m(1, true, old), m(2, true, old), m(3, true, old)}, false, "waiting for n1"},
		{"first restarting: second waits", 2, []MemberQuota{m(1, false, old), m(2, true, old), m(3, true, old)}, false, "not answering: n1"},
		{"first done: second goes", 2, []MemberQuota{m(1, true, want), m(2, true, old), m(3, true, old)}, true, ""},
		{"second restarting: third waits", 3, []MemberQuota{m(1, true, want), m(2, false, old), m(3, true, old)}, false, "not answering: n2"},
		{"third waits for the second's new quota", 3, []MemberQuota{m(1, true, want), m(2, true, old), m(3, true, old)}, false, "waiting for n2"},
		{"a higher member down blocks too", 1, []MemberQuota{m(1, true, old), m(2, true, old), m(3, false, old)}, false, "not answering: n3"},
		{"first back but catching up: second waits", 2, []MemberQuota{{ID: 1, Name: "n1", Healthy: true, Quota: want}, m(2, true, old), m(3, true, old)}, false, "catching up: n1"},
		{"a learner does not count", 2, []MemberQuota{m(1, true, want), m(2, true, old), {ID: 0, Learner: true}}, true, ""},
	} {
		ok, why := MayRaiseQuotaUnlocked(tc.self, want, tc.members)
		if ok != tc.ok || !strings.Contains(why, tc.reason) {
			t.Errorf("%s: = %v %q, want %v containing %q", tc.name, ok, why, tc.ok, tc.reason)
		}
	}
}
