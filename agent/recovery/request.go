// Package recovery rebuilds an etcd cluster whose quorum is lost for good,
// on one node: from this member's data (every entry of its WAL applied) or
// from a snapshot, into a new cluster with a new cluster token, so the
// member and cluster IDs are new and no member of the lost cluster can ever
// rejoin it with stale data. It holds the request file through which
// `etcd-agent recover` asks the node's running agent to do it, the pure rules
// (who may recover, whose data a recovery replaced) and the data work.
package recovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

// Source is what the new cluster is built from.
type Source string

const (
	// FromMember: this node's member data.
	FromMember Source = "member"
	// FromSnapshot: a snapshot (latest, a name, a file or s3://…).
	FromSnapshot Source = "snapshot"
)

// State is how far a request is.
type State string

const (
	// Requested: written by `etcd-agent recover`, not yet picked up.
	Requested State = "requested"
	// Running: the agent is recovering (a restarted agent resumes it).
	Running State = "running"
	// Starting: the new member's data is in place; its etcd starts and
	// the recovery is done once it is healthy.
	Starting State = "starting"
	// Done: the new cluster is healthy.
	Done State = "done"
	// Refused: the agent found a reason not to (a quorum answers, …).
	Refused State = "refused"
	// Failed: the recovery failed; the message says why and what to do.
	Failed State = "failed"
)

// Finished reports whether the agent is done with the request.
func (s State) Finished() bool { return s == Done || s == Refused || s == Failed }

// Line is one progress line.
type Line struct {
	At  time.Time `json:"at"`
	Msg string    `json:"msg"`
}

// Request is the request file, `<data dir>.recover`: what `recover` asked
// for, and what the agent reports back while it works.
type Request struct {
	From     Source `json:"from"`
	Snapshot string `json:"snapshot,omitempty"` // for FromSnapshot
	// AllowPartial: "latest" may choose among the snapshot stores that
	// answer when another does not.
	AllowPartial bool `json:"allowPartial,omitempty"`
	// Token is the new cluster's initial cluster token, chosen once so a
	// resumed recovery builds the same cluster.
	Token string `json:"token"`
	// Takeover: replace a recovery another node started and never finished.
	Takeover bool `json:"takeover,omitempty"`
	// Force: recover from this member although another member of the
	// cluster answers with newer entries.
	Force bool `json:"force,omitempty"`
	// Lost are members of the lost cluster the operator declared gone for
	// good: a recovery from a member need not hear from them.
	Lost []string `json:"lost,omitempty"`
	// Replaces is the recovery generation the operator says this
	// recovery replaces (--replaces): a finished recovery whose cluster
	// the quorum check could not look for is replaced only when named.
	Replaces    int       `json:"replaces,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	RequestedBy int       `json:"requestedBy"` // pid of `recover`

	State     State  `json:"state"`
	Progress  []Line `json:"progress,omitempty"`
	Error     string `json:"error,omitempty"`
	ClusterID string `json:"clusterID,omitempty"` // hex, the new cluster's
	// Replaced are the cluster IDs (hex) the new cluster replaces, kept
	// here for a resumed recovery that cannot read the registry.
	Replaced []string `json:"replaced,omitempty"`
	// Elapsed is the time from the request to the new cluster's health.
	Elapsed string `json:"elapsed,omitempty"`
}

// Describe names the source for logs and records.
func (r Request) Describe() string {
	if r.From == FromSnapshot {
		return "snapshot " + r.Snapshot
	}
	return "member data"
}

// RequestPath is the request file of a data dir: beside it, not in it (etcd
// owns the data dir, and the recovery replaces it).
func RequestPath(dataDir string) string { return sidefile.RecoverRequestPath(dataDir) }

// WorkDir is where the recovery keeps its intermediate files (the copy of the
// member, the snapshot, the new member's data before it is moved in).
func WorkDir(dataDir string) string { return sidefile.RecoverWorkDir(dataDir) }

// ReadRequest reads the request file; ok is false when there is none.
func ReadRequest(dataDir string) (r Request, ok bool, err error) {
	b, err := os.ReadFile(RequestPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return Request{}, false, nil
	}
	if err != nil {
		return Request{}, false, fmt.Errorf("read recovery request: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Request{}, false, fmt.Errorf("read recovery request %s: %w (delete it and run recover again)", RequestPath(dataDir), err)
	}
	return r, true, nil
}

// WriteRequest writes the request file atomically.
func WriteRequest(dataDir string, r Request) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(RequestPath(dataDir), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write recovery request: %w", err)
	}
	return nil
}

// Pending returns the data dir's request when it is not finished.
func Pending(dataDir string) (Request, bool) {
	r, ok, err := ReadRequest(dataDir)
	if err != nil || !ok {
		return Request{}, false
	}
	return r, !r.State.Finished()
}

// NewToken is a new cluster's initial cluster token: the cluster name, the
// time, and random-free uniqueness from the time's nanoseconds (two
// recoveries of one cluster never share a nanosecond on one registry, which
// serializes them anyway).
func NewToken(clusterName string, now time.Time) string {
	return fmt.Sprintf("%s-recovered-%s-%04x", clusterName, now.UTC().Format("20060102T150405Z"), now.Nanosecond()&0xffff)
}
