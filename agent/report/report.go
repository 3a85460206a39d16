// Package report is the agent's published state: one JSON file under the
// agent's runtime directory (DefaultPath) that the running agent rewrites
// atomically and `etcd-agent status` reads without root. It holds this
// node's phase and its history, identity, URLs, certificate expiry and the
// membership decisions the agent took, plus what a reader needs to tell a
// live agent from a stale file (Alive).
package report

import (
	"maps"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/problem"
)

// DefaultPath is where the agent publishes its report: the unit's
// RuntimeDirectory (mode 0755), so any local user can read it.
const DefaultPath = "/run/etcd-agent/status.json"

// MaxHistory is how many transitions and decisions a report keeps.
const MaxHistory = 20

// Phase is where the agent is in a node's lifecycle.
type Phase string

// Phases, in the order a node normally goes through them.
const (
	PhaseStarting     Phase = "starting"      // process started, config loaded
	PhaseIdentity     Phase = "identity"      // learning who this node is (IMDS or static)
	PhaseCertificates Phase = "certificates"  // issuing or loading certificates
	PhaseDiscovery    Phase = "discovery"     // registering and waiting for peers
	PhaseJoining      Phase = "joining"       // adding self to an existing cluster
	PhaseStandby      Phase = "standby"       // cluster full and healthy: waiting for a slot
	PhaseLearner      Phase = "learner"       // member is a learner, catching up
	PhaseLeaving      Phase = "leaving"       // removing this member on request (etcd-agent leave)
	PhaseLeft         Phase = "left"          // this node left the cluster; nothing runs
	PhaseRecovering   Phase = "recovering"    // rebuilding the cluster after a quorum loss (etcd-agent recover)
	PhaseStartingEtcd Phase = "starting-etcd" // etcd starting or being adopted
	PhaseHealthy      Phase = "healthy"       // healthy voter, READY=1 sent
	PhaseDegraded     Phase = "degraded"      // was healthy, now is not
	PhaseStopping     Phase = "stopping"      // shutting down
	PhaseStopped      Phase = "stopped"       // shut down cleanly
)

// Cert is one certificate the agent manages.
type Cert struct {
	Role     string    `json:"role"` // "server", "peer", "client", "operator"
	NotAfter time.Time `json:"not_after"`
	// Issuer is the CA that signed it: common name and a short sha256 of
	// the CA certificate (CA rotation: every node shows the new one).
	Issuer string `json:"issuer,omitempty"`
}

// Transition is one change of phase.
type Transition struct {
	At      time.Time `json:"at"`
	Phase   Phase     `json:"phase"`
	Message string    `json:"message,omitempty"`
}

// Decision is one membership decision the agent took (bootstrap, join,
// remove a dead member, promote), with the reason shown in status.
type Decision struct {
	At     time.Time `json:"at"`
	Action Action    `json:"action"`
	Reason string    `json:"reason"`
}

// ChangeState is where a rolling etcd change stands on this node.
type ChangeState string

// Change states.
const (
	// ChangeWaiting: the change waits its turn (the lock, or every other
	// voter healthy); Reason says for what.
	ChangeWaiting ChangeState = "waiting"
	// ChangeRestarting: the member is restarting with the change now.
	ChangeRestarting ChangeState = "restarting"
	// ChangeRefused: etcd's version rules forbid the change; the member keeps
	// running what it ran. Reason says why and what to do.
	ChangeRefused ChangeState = "refused"
	// ChangeFailed: the last restart with the change failed; it is retried.
	ChangeFailed ChangeState = "failed"
)

// EtcdChange is a pending change of the member's image or settings.
type EtcdChange struct {
	State ChangeState `json:"state"`
	// Change lists what differs ("image a → b; --quota-backend-bytes: x → y").
	Change string `json:"change"`
	// Reason is why it waits or was refused.
	Reason string `json:"reason,omitempty"`
	// Since is when the change was first seen in this state.
	Since time.Time `json:"since"`
}

// NodeReport is everything the agent publishes about this node.
type NodeReport struct {
	PID       int       `json:"pid"`        // the agent's process id
	Version   string    `json:"version"`    // the agent's version
	UpdatedAt time.Time `json:"updated_at"` // when the file was last written

	Phase     Phase  `json:"phase"`
	Message   string `json:"message,omitempty"`    // the current STATUS= line
	LastError string `json:"last_error,omitempty"` // most recent error, "" once resolved

	Name             string `json:"name,omitempty"` // etcd member name
	PrivateIP        string `json:"private_ip,omitempty"`
	PublicIP         string `json:"public_ip,omitempty"`
	InstanceID       string `json:"instance_id,omitempty"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
	Hostname         string `json:"hostname,omitempty"`

	ClientURL string   `json:"client_url,omitempty"`
	PeerURL   string   `json:"peer_url,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"` // client URLs of all members as known

	CertDir string `json:"cert_dir,omitempty"`
	Certs   []Cert `json:"certs,omitempty"`

	Ready bool `json:"ready"` // READY=1 has been sent

	// EtcdImage is the container image the member runs ("" when embedded).
	EtcdImage string `json:"etcd_image,omitempty"`
	// EtcdChange is a change of the etcd image or settings in the node's
	// config that the member does not run yet (a rolling change waiting or
	// in progress, or refused); zero when the member runs what the config asks.
	EtcdChange EtcdChange `json:"etcd_change,omitzero"`

	Backup *Backup `json:"backup,omitempty"` // snapshots; nil when backups are off

	Transitions []Transition `json:"transitions,omitempty"` // last MaxHistory, newest last
	Decisions   []Decision   `json:"decisions,omitempty"`   // last MaxHistory, newest last

	// Maintenance is defragmentation and NOSPACE handling (maintenance.go).
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	// FleetLock is the cluster's reboot slots (fleetlock.go); nil when the
	// FleetLock protocol is not served.
	FleetLock *FleetLock `json:"fleet_lock,omitempty"`
	// DecisionCounts counts every decision by action since the agent
	// started (Decisions keeps only the last few): the metrics' counters.
	DecisionCounts map[Action]uint64 `json:"decision_counts,omitempty"`

	// Problems are what the agent finds wrong now, most severe first:
	// each part of the agent sets its own (Recorder.SetProblems), and
	// status, the STATUS= line and the metrics show them.
	Problems []problem.Problem `json:"problems,omitempty"`
}

// clone returns a copy that shares no slices with r.
func (r NodeReport) clone() NodeReport {
	r.Endpoints = cloneSlice(r.Endpoints)
	r.Certs = cloneSlice(r.Certs)
	r.Transitions = cloneSlice(r.Transitions)
	r.Decisions = cloneSlice(r.Decisions)
	r.Maintenance = r.Maintenance.clone()
	r.FleetLock = r.FleetLock.clone()
	r.DecisionCounts = maps.Clone(r.DecisionCounts)
	r.Problems = cloneSlice(r.Problems)
	return r
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// lastN keeps the newest n elements of s.
func lastN[T any](s []T, n int) []T {
	if len(s) <= n {
		return s
	}
	return append(s[:0:0], s[len(s)-n:]...)
}
