package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/membership"
)

// Refuse is a Step for a change that etcd's rules forbid: it is never
// applied, whatever the cluster's health; the reason says what to do.
const Refuse Kind = "refuse"

// ChangeID names the image and settings desired asks for, the same on every
// node (no name, address or path in it): a change that failed on one member
// is recognised on the others.
func ChangeID(desired etcdconf.Spec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00%d\x00%d\x00%d", desired.Image, desired.QuotaBackendBytes, desired.AutoCompactionMode,
		desired.AutoCompactionRetention, desired.SnapshotCount, desired.HeartbeatMs, desired.ElectionMs)
	for _, f := range desired.ExtraFlags {
		fmt.Fprintf(h, "\x00%s", f)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Differences lists how desired differs from applied, the spec the member
// runs: "image a → b" and "--flag: old → new" ("(unset)" for a flag only
// one side has). The bootstrap-only settings do not count: etcd ignores
// them once the member has data.
func Differences(applied, desired etcdconf.Spec) []string {
	var out []string
	if applied.Image != desired.Image {
		out = append(out, fmt.Sprintf("image %s → %s", orUnset(applied.Image), orUnset(desired.Image)))
	}
	before, after := flagMap(applied), flagMap(desired)
	names := make([]string, 0, len(before)+len(after))
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if b, a := before[n], after[n]; b != a {
			out = append(out, fmt.Sprintf("%s: %s → %s", n, orUnset(b), orUnset(a)))
		}
	}
	return out
}

// flagMap is the member flags of s by name; a repeated flag keeps all its
// values, joined.
func flagMap(s etcdconf.Spec) map[string]string {
	s.InitialCluster, s.InitialClusterState, s.InitialClusterToken = "", "", ""
	m := map[string]string{}
	for _, f := range s.Flags() {
		name, value, _ := strings.Cut(f, "=")
		if prev, ok := m[name]; ok {
			value = prev + "," + value
		}
		m[name] = value
	}
	return m
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// ChangeFacts is what a node knows, under the cluster-wide lock, when its
// config asks for another etcd image or other settings than its member runs.
type ChangeFacts struct {
	// Applied is the spec the member runs; Desired the one the config makes.
	Applied, Desired etcdconf.Spec
	// ClusterVersion is etcd's cluster version ("3.6.0"), "" when unknown.
	ClusterVersion string
	// DowngradeTarget is etcd's enabled downgrade target ("3.6"), "" when
	// no downgrade is enabled.
	DowngradeTarget string
	// StorageVersion is the local member's storage version ("3.7.0"), ""
	// when unknown (etcd before 3.6).
	StorageVersion string
	// Failed is why this very change already failed on a member (it did
	// not become healthy with it and was rolled back), "" if it did not:
	// it is not tried again on any member.
	Failed string
	// Rebooting is as in Facts.
	Rebooting []string
	// LocalReady, SelfPeerURL and Members are as in Facts.
	LocalReady  bool
	SelfPeerURL string
	Members     []membership.ClusterMember
}

// Describe is the change in one line ("" when there is none).
func Describe(applied, desired etcdconf.Spec) string {
	return strings.Join(Differences(applied, desired), "; ")
}

// CheckImage applies etcd's version rules to a change of image: "" when the
// image is unchanged or the change is allowed, else why it is refused.
func CheckImage(applied, desired etcdconf.Spec, clusterVersion, downgradeTarget string) (refused string, known bool) {
	if applied.Image == desired.Image {
		return "", true
	}
	target, err := ImageVersion(desired.Image)
	if err != nil {
		return fmt.Sprintf("%v: the version rules (one minor version at a time, no downgrade) cannot be checked; tag the image vMAJOR.MINOR.PATCH", err), true
	}
	if clusterVersion == "" {
		return "", false
	}
	cluster, err := ParseVersion(clusterVersion)
	if err != nil {
		return "", false
	}
	return CheckUpgrade(cluster, target, downgradeTarget), true
}

// storageAhead says why an older etcd cannot run the member yet: its data
// is at a newer storage version. etcd's downgrade procedure lowers it
// after `etcdctl downgrade enable`; until then the older etcd would refuse
// to start. "" when there is nothing to wait for.
func storageAhead(f ChangeFacts) string {
	if f.Applied.Image == f.Desired.Image || f.StorageVersion == "" {
		return ""
	}
	target, err := ImageVersion(f.Desired.Image)
	if err != nil {
		return ""
	}
	storage, err := ParseVersion(f.StorageVersion)
	if err != nil || storage.Major != target.Major || storage.Minor <= target.Minor {
		return ""
	}
	return fmt.Sprintf("waiting for etcd to lower this member's storage version to %s (it is %s), which etcd's downgrade procedure does once the downgrade is enabled",
		target.minor(), storage.minor())
}

// PlanChange decides what the local member does about a changed etcd image
// or settings: nothing (None: the member runs what the config asks), never
// (Refuse: etcd's version rules forbid it, or it failed on a member), not yet (Wait: the cluster is
// not ready to lose this member for a moment), or restart with the desired
// spec now.
func PlanChange(f ChangeFacts) Step {
	change := Describe(f.Applied, f.Desired)
	if change == "" {
		return Step{Kind: None}
	}
	why := "etcd config changed (" + change + ")"
	refused, known := CheckImage(f.Applied, f.Desired, f.ClusterVersion, f.DowngradeTarget)
	switch {
	case refused != "":
		return Step{Kind: Refuse, Reason: why + ": refused: " + refused}
	case f.Failed != "":
		return Step{Kind: Refuse, Reason: why + ": not tried again: " + f.Failed}
	case storageAhead(f) != "":
		return Step{Kind: Wait, Reason: why + ": " + storageAhead(f)}
	case !known:
		return Step{Kind: Wait, Reason: why + ": waiting for the cluster version to check the upgrade against"}
	}
	if step, wait := rebootWait(why, f.Rebooting); wait {
		return step
	}
	return MayRestart(why, f.LocalReady, f.SelfPeerURL, f.Members)
}

// OnlyRaisesQuota reports whether desired differs from applied in a higher
// backend quota and nothing else: the one change that clears a NOSPACE
// alarm, when etcd's writes, the membership lock's included, are refused.
func OnlyRaisesQuota(applied, desired etcdconf.Spec) bool {
	d := Differences(applied, desired)
	return len(d) == 1 && strings.HasPrefix(d[0], "--quota-backend-bytes:") && desired.QuotaBackendBytes > applied.QuotaBackendBytes
}

// MemberQuota is one member as seen while no lock can be taken: whether it
// answers, and the quota it runs with (etcd's status reports it).
type MemberQuota struct {
	ID      uint64
	Name    string
	Learner bool
	Healthy bool
	// CaughtUp: it applied what the leader had committed.
	CaughtUp bool
	Quota    int64
}

// MayRaiseQuotaUnlocked decides, without the membership lock (a NOSPACE
// alarm refuses the lock's writes), whether the local member may restart
// now to raise its quota to want. The members go in ID order: a member
// goes only when every other voter answers and is caught up, and every
// voter with a lower ID already runs with want. A member's quota changes only through its
// restart, so the next one cannot go before the previous one is back and
// answering with the new quota: never two at once, with no lock.
func MayRaiseQuotaUnlocked(selfID uint64, want int64, members []MemberQuota) (bool, string) {
	for _, m := range members {
		if m.ID == selfID || m.Learner {
			continue
		}
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("%x", m.ID)
		}
		if !m.Healthy {
			return false, fmt.Sprintf("waiting until every other voter answers (not answering: %s)", name)
		}
		if !m.CaughtUp {
			return false, fmt.Sprintf("waiting until every other voter is caught up (catching up: %s)", name)
		}
		if m.ID < selfID && m.Quota < want {
			return false, fmt.Sprintf("the NOSPACE alarm blocks the membership lock: members raise their quota in ID order, waiting for %s", name)
		}
	}
	return true, ""
}
