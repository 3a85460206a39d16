// Package sidefile declares the files the agent keeps next to the etcd data
// dir, with their typed contents. They sit beside the data dir, not inside
// it: etcd owns that directory, and a rejoin or `leave` moves or wipes it
// while these must outlive it.
//
//	<dataDir>.left            LeaveMarker: this node left (or is leaving) the cluster
//	<dataDir>.endpoints       the cluster's client URLs as last seen
//	<dataDir>.members         the cluster's member list as last seen healthy
//	<dataDir>.etcd-spec.json  the etcd spec the member runs (rolling changes)
//	<dataDir>.recover         a recovery request (package recovery's Request)
//	<dataDir>.recover-work/   a recovery's intermediate files
//	<dataDir>.founder-ready   FounderReady: a static founder without data is ready to bootstrap
//
// Every write is atomic and fsynced (internal/atomicfile): after a crash or a
// power cut a file holds its old content or its new one.
package sidefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

func beside(dataDir, suffix string) string { return strings.TrimRight(dataDir, "/") + suffix }

// LeaveMarkerPath is written by `leave` before the member is removed. While
// it exists the agent neither restarts etcd nor joins again; delete it to
// let the node join as a new member.
func LeaveMarkerPath(dataDir string) string { return beside(dataDir, ".left") }

// EndpointsPath holds the cluster's client URLs as last seen, so a learner
// restarted before its promotion (a learner cannot list members) or a node
// checking whether it still belongs can reach the other members.
func EndpointsPath(dataDir string) string { return beside(dataDir, ".endpoints") }

// AppliedSpecPath records the etcd spec the member runs, so an agent
// restarted with a changed config starts (or adopts) the member as it was
// and rolls the change out under the lock instead of at once on every node.
func AppliedSpecPath(dataDir string) string { return beside(dataDir, ".etcd-spec.json") }

// RecoverRequestPath is where `etcd-agent recover` leaves its request for
// the running agent, which writes its progress back into it.
func RecoverRequestPath(dataDir string) string { return beside(dataDir, ".recover") }

// RecoverWorkDir is where a recovery keeps its intermediate files (the copy
// of the member, the snapshot, the new member's data before it is moved in).
func RecoverWorkDir(dataDir string) string { return beside(dataDir, ".recover-work") }

// LeaveState is where a `leave` stands.
type LeaveState string

const (
	// Leaving: the marker is written and the member is being removed; etcd
	// is not restarted and no job touches the member.
	Leaving LeaveState = "leaving"
	// Left: the removal is committed and the data wiped.
	Left LeaveState = "left"
)

// LeaveMarker is the content of LeaveMarkerPath.
type LeaveMarker struct {
	State    LeaveState `json:"state"`
	Member   string     `json:"member,omitempty"`
	MemberID string     `json:"memberID,omitempty"`
	// ClusterID is the cluster the member belongs to (hex), so that a
	// leave resumed after the data was wiped still knows which cluster to
	// finish with.
	ClusterID string    `json:"clusterID,omitempty"`
	At        time.Time `json:"at"`
	// Note says it in words (older agents wrote only this, as text).
	Note string `json:"note,omitempty"`
}

func (m LeaveMarker) String() string {
	if m.Note != "" {
		return m.Note
	}
	return fmt.Sprintf("%s at %s", m.State, m.At.UTC().Format(time.RFC3339))
}

// ReadLeaveMarker reads the marker; ok is false when there is none. A marker
// that cannot be read counts as Leaving: etcd stays held, which is safe.
func ReadLeaveMarker(dataDir string) (m LeaveMarker, ok bool) {
	b, err := os.ReadFile(LeaveMarkerPath(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return LeaveMarker{}, false
	}
	if err != nil {
		return LeaveMarker{State: Leaving, Note: fmt.Sprintf("cannot read %s: %v", LeaveMarkerPath(dataDir), err)}, true
	}
	if json.Unmarshal(b, &m) == nil && (m.State == Leaving || m.State == Left) {
		return m, true
	}
	// A text marker of an older agent: "leaving since …" or "left at …".
	text := strings.TrimSpace(string(b))
	m = LeaveMarker{State: Leaving, Note: text}
	if strings.HasPrefix(text, "left") {
		m.State = Left
	}
	return m, true
}

// WriteLeaveMarker writes the marker.
func WriteLeaveMarker(dataDir string, m LeaveMarker) error {
	return writeJSON(LeaveMarkerPath(dataDir), m, 0o644)
}

// RemoveLeaveMarker deletes the marker (none is fine) and makes the removal
// durable: a marker that came back after a crash would hold etcd again.
func RemoveLeaveMarker(dataDir string) error {
	return remove(LeaveMarkerPath(dataDir))
}

// remove deletes path (none is fine) and fsyncs its directory.
func remove(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// ReadEndpoints returns the cluster's client URLs as last seen (nil when
// none were recorded or the file cannot be read: less is known).
func ReadEndpoints(dataDir string) []string {
	b, err := os.ReadFile(EndpointsPath(dataDir))
	if err != nil {
		return nil
	}
	var eps []string
	if json.Unmarshal(b, &eps) != nil {
		return nil
	}
	return eps
}

// WriteEndpoints records eps (sorted) unless they are what is recorded.
func WriteEndpoints(dataDir string, eps []string) error {
	eps = slices.Clone(eps)
	slices.Sort(eps)
	if len(eps) == 0 || slices.Equal(eps, ReadEndpoints(dataDir)) {
		return nil
	}
	return writeJSON(EndpointsPath(dataDir), eps, 0o644)
}

// RemoveEndpoints forgets the recorded endpoints (a recovered cluster has
// other ones).
func RemoveEndpoints(dataDir string) error {
	if err := os.Remove(EndpointsPath(dataDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ReadAppliedSpec returns the spec the member ran last; ok is false when
// none is recorded (a first start, or an agent older than the record).
func ReadAppliedSpec(dataDir string) (s etcdconf.Spec, ok bool) {
	b, err := os.ReadFile(AppliedSpecPath(dataDir))
	if err != nil {
		return etcdconf.Spec{}, false
	}
	if json.Unmarshal(b, &s) != nil {
		return etcdconf.Spec{}, false
	}
	return s, true
}

// WriteAppliedSpec records the spec the member runs now, without its
// bootstrap settings (only a first start uses them).
func WriteAppliedSpec(dataDir string, s etcdconf.Spec) error {
	s.InitialCluster, s.InitialClusterState, s.InitialClusterToken = "", "", ""
	return writeJSON(AppliedSpecPath(dataDir), s, 0o600)
}

// FounderReadyPath records that this founder (static discovery, no data
// yet) saw every other founder answer without data: it is "ready", and stays
// so across an agent restart until its member has data. The others may have
// bootstrapped on that word: forgetting it would make this node join a
// cluster its founders have not all started.
func FounderReadyPath(dataDir string) string { return beside(dataDir, ".founder-ready") }

// FounderReady is the content of FounderReadyPath: valid only for the same
// token and founder list.
type FounderReady struct {
	At       time.Time `json:"at"`
	Token    string    `json:"token"`
	Founders []string  `json:"founders"`
}

// ReadFounderReady returns the record; ok is false when there is none or it
// cannot be read.
func ReadFounderReady(dataDir string) (r FounderReady, ok bool) {
	b, err := os.ReadFile(FounderReadyPath(dataDir))
	if err != nil || json.Unmarshal(b, &r) != nil {
		return FounderReady{}, false
	}
	return r, true
}

// WriteFounderReady records r (fsynced before the founder says "ready").
func WriteFounderReady(dataDir string, r FounderReady) error {
	return writeJSON(FounderReadyPath(dataDir), r, 0o644)
}

// RemoveFounderReady forgets the record (the member has data now).
func RemoveFounderReady(dataDir string) error {
	if err := os.Remove(FounderReadyPath(dataDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func writeJSON(path string, v any, mode fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
