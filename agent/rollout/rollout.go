// Package rollout decides when a node restarts its etcd member to load
// something etcd reads only at start: a new CA trust bundle (a CA rotation
// adding the new CA, later dropping the old one), or a changed etcd image or
// setting in the node's config (PlanChange, with etcd's version rules in
// CheckUpgrade). The restarts roll through the cluster one member at a time,
// only while every other voter answers. The decisions are
// pure functions over facts (Plan, PlanChange, MayRaiseQuotaUnlocked); the
// jobs that gather them and restart the member are CAJob and ChangeJob, on
// a narrow Node.
package rollout

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Bundle identifies a CA trust bundle (the node's ca.crt).
type Bundle struct {
	// Fingerprint is a short sha256 of the file's bytes; "" when unknown.
	Fingerprint string
	// CAs is how many certificates the bundle holds.
	CAs int
	// Trusts names each CA of the bundle (pki.CAName), in order.
	Trusts []string
}

// BundleOf describes the PEM bytes of a trust bundle.
func BundleOf(pem []byte) Bundle {
	sum := sha256.Sum256(pem)
	return Bundle{Fingerprint: "sha256:" + hex.EncodeToString(sum[:8]), CAs: bytes.Count(pem, []byte("-----BEGIN CERTIFICATE-----")),
		Trusts: pki.BundleCANames(pem)}
}

// Known reports whether the bundle was recorded.
func (b Bundle) Known() bool { return b.Fingerprint != "" }

func (b Bundle) String() string {
	if !b.Known() {
		return "unknown"
	}
	plural := "s"
	if b.CAs == 1 {
		plural = ""
	}
	return fmt.Sprintf("%d CA%s %s", b.CAs, plural, b.Fingerprint)
}

// Needed reports whether a member started with the bundle started must
// restart to load current, and why. An unknown started bundle needs nothing:
// there is nothing to compare.
func Needed(started, current Bundle) (bool, string) {
	if !started.Known() || !current.Known() || started.Fingerprint == current.Fingerprint {
		return false, ""
	}
	return true, fmt.Sprintf("CA bundle changed (etcd started with %s, ca.crt now has %s)", started, current)
}

// Facts is what a node knows, under the cluster-wide lock, when its member
// may have to restart.
type Facts struct {
	Started, Current Bundle
	// LocalReady: the local member is healthy, a voter and caught up.
	LocalReady  bool
	SelfPeerURL string
	// Members as listed and probed just now (Healthy set by the probe).
	Members []membership.ClusterMember
	// Rebooting names the other nodes' members holding a reboot slot
	// (FleetLock): they may go down at any moment.
	Rebooting []string
}

// Kind is what to do now.
type Kind string

// Kinds of Step.
const (
	// None: the member runs with the current bundle.
	None Kind = "none"
	// Wait: a restart is needed but not safe now; look again at the next check.
	Wait Kind = "wait"
	// Restart the local member now.
	Restart Kind = "restart"
)

// Step is the decision, with the reason shown in status.
type Step struct {
	Kind   Kind
	Reason string
}

// Plan decides whether the local member restarts now to load a changed CA
// bundle (MayRestart).
func Plan(f Facts) Step {
	need, why := Needed(f.Started, f.Current)
	if !need {
		return Step{Kind: None}
	}
	if step, wait := rebootWait(why, f.Rebooting); wait {
		return step
	}
	return MayRestart(why, f.LocalReady, f.SelfPeerURL, f.Members)
}

// rebootWait holds a restart while another node holds a reboot slot: it was
// granted on a survey that counted this member up, and both down at once
// would cost a 3-voter cluster its quorum.
func rebootWait(why string, rebooting []string) (Step, bool) {
	if len(rebooting) == 0 {
		return Step{}, false
	}
	return Step{Kind: Wait, Reason: fmt.Sprintf("%s: waiting until %s, holding a reboot slot (FleetLock), is back", why, strings.Join(rebooting, ", "))}, true
}

// MayRestart decides whether the local member, which must restart for why,
// may go now: only when it is a healthy voter and every other voter
// answers, so the cluster keeps its quorum while it is down (with three
// voters or more; a cluster of one or two voters cannot, and waiting would
// not change that). The caller holds the cluster-wide lock, so no other
// member restarts meanwhile.
func MayRestart(why string, localReady bool, selfPeerURL string, members []membership.ClusterMember) Step {
	if !localReady {
		return Step{Kind: Wait, Reason: why + ": waiting for the local member to be healthy and caught up before restarting it"}
	}
	i := slices.IndexFunc(members, func(m membership.ClusterMember) bool { return slices.Contains(m.PeerURLs, selfPeerURL) })
	if i < 0 {
		return Step{Kind: Wait, Reason: why + ": the local member is not in the member list"}
	}
	if members[i].IsLearner {
		return Step{Kind: Wait, Reason: why + ": the local member is a learner; restarting once it is a voter"}
	}
	var down []string
	for j, m := range members {
		if j == i || m.IsLearner || m.Healthy {
			continue
		}
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("%x", m.ID)
		}
		down = append(down, name)
	}
	if len(down) > 0 {
		return Step{Kind: Wait, Reason: fmt.Sprintf("%s: waiting until every other voter answers (not answering: %v) before restarting", why, down)}
	}
	return Step{Kind: Restart, Reason: why + ": restarting etcd to load it"}
}

// LeaderTarget picks the voter that takes over leadership before the local
// member restarts: the first healthy voter other than self (by ID, so the
// choice is stable). ok is false when there is none.
func LeaderTarget(selfPeerURL string, members []membership.ClusterMember) (id uint64, ok bool) {
	for _, m := range members {
		if m.IsLearner || !m.Healthy || slices.Contains(m.PeerURLs, selfPeerURL) {
			continue
		}
		if !ok || m.ID < id {
			id, ok = m.ID, true
		}
	}
	return id, ok
}
