package status

import (
	"time"

	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// View is everything `status` shows. The table and `-o json` are both
// rendered from it; its JSON field names are a stable interface for scripts.
type View struct {
	CheckedAt time.Time  `json:"checked_at"`
	Node      Node       `json:"node"`
	Members   []Member   `json:"members"`
	Endpoints []Endpoint `json:"endpoints"`
	// MemberListFrom is the endpoint that answered the member list; empty
	// with MemberListError set when none did.
	MemberListFrom  string `json:"member_list_from,omitempty"`
	MemberListError string `json:"member_list_error,omitempty"`
	// HashKV compares the members' HashKV at one revision: a Mismatch means
	// replicas diverged, and is a problem.
	HashKV  hashcheck.HashCheck `json:"hash_kv"`
	Summary Summary             `json:"summary"`
}

// Node is this node's agent as its published report describes it.
type Node struct {
	// ReportError says why the report could not be read ("" when it was).
	ReportError string `json:"report_error,omitempty"`

	Name       string `json:"name,omitempty"`
	PrivateIP  string `json:"private_ip,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
	InstanceID string `json:"instance_id,omitempty"`
	Zone       string `json:"availability_zone,omitempty"`

	Phase     report.Phase `json:"phase,omitempty"`
	Message   string       `json:"message,omitempty"`
	Ready     bool         `json:"ready"`
	LastError string       `json:"last_error,omitempty"`

	// AgentAlive is whether the agent process exists and keeps its report
	// fresh; AgentState says why, in words.
	AgentAlive   bool      `json:"agent_alive"`
	AgentState   string    `json:"agent_state"`
	AgentPID     int       `json:"agent_pid,omitempty"`
	AgentVersion string    `json:"agent_version,omitempty"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`

	Certs       []Cert              `json:"certs,omitempty"`
	Transitions []report.Transition `json:"transitions,omitempty"` // newest last
	Decisions   []report.Decision   `json:"decisions,omitempty"`   // newest last
	// Problems are what the agent itself found (its report), shown under
	// the summary's problems too.
	Problems []problem.Problem `json:"problems,omitempty"`
	// Backup is the cluster's snapshot state as the agent last read it;
	// nil when backups are off.
	Backup *report.Backup `json:"backup,omitempty"`
	// Maintenance is the agent's last defragmentation/NOSPACE round: every
	// member's fragmentation, the cluster's last defragmentation.
	Maintenance *report.Maintenance `json:"maintenance,omitempty"`
	// EtcdChange is a change of the etcd image or settings rolling out,
	// refused or failed on this node (zero: none).
	EtcdChange report.EtcdChange `json:"etcd_change,omitzero"`
	// FleetLock is the cluster's reboot slots as the agent last read them
	// (who holds one, its group, since when) and its latest answer to
	// Zincati; nil when FleetLock is not served.
	FleetLock *report.FleetLock `json:"fleet_lock,omitempty"`
}

// Cert is one certificate's expiry.
type Cert struct {
	Role     string    `json:"role"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"` // whole days; negative once expired
	// Issuer is the signing CA: from the agent's report its common name and
	// a short sha256 (CA rotation progress), else the leaf's issuer name.
	Issuer string `json:"issuer,omitempty"`
}

// Member is one entry of the member list.
type Member struct {
	ID         string   `json:"id"` // hex, as etcdctl prints it
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	IsLearner  bool     `json:"is_learner"`
}

// Endpoint is what one client URL answered.
type Endpoint struct {
	Endpoint string `json:"endpoint"`
	// MemberID (hex) and Name identify the member behind the endpoint: from
	// its status answer, else from the member list's client URLs.
	MemberID string `json:"member_id,omitempty"`
	Name     string `json:"name,omitempty"`
	// Role is "leader", "follower", "learner" or "" when unknown.
	Role   string `json:"role,omitempty"`
	Leader bool   `json:"leader"`
	// LeaderID (hex) is the leader this member knows, "" when none.
	LeaderID         string   `json:"leader_id,omitempty"`
	RaftTerm         uint64   `json:"raft_term,omitempty"`
	RaftIndex        uint64   `json:"raft_index,omitempty"`
	RaftAppliedIndex uint64   `json:"raft_applied_index,omitempty"`
	DBSize           int64    `json:"db_size,omitempty"`
	DBSizeInUse      int64    `json:"db_size_in_use,omitempty"`
	Quota            int64    `json:"quota,omitempty"` // backend quota in bytes, 0 if unknown
	Version          string   `json:"version,omitempty"`
	Alarms           []string `json:"alarms,omitempty"` // e.g. "NOSPACE"
	Healthy          bool     `json:"healthy"`
	// HealthLatencyMS is how long the linearizable health read took.
	HealthLatencyMS float64 `json:"health_latency_ms,omitempty"`
	// HashKV is the member's HashKV at View.HashKV.Revision, 8 hex digits;
	// "" when it gave none (learner, no answer, or another endpoint of the
	// same member answered it).
	HashKV string `json:"hash_kv,omitempty"`
	// Error is why the endpoint is not healthy ("" when it is).
	Error string `json:"error,omitempty"`
}

// Summary is the verdict over the whole view.
type Summary struct {
	// Healthy: every member answers and is healthy, there is a leader, no
	// alarm is raised, no HashKV mismatch was found and there are as many
	// voters as cluster.size. Agent problems do not change it, but are
	// listed in Problems and do change the exit code.
	Healthy   bool   `json:"healthy"`
	HasLeader bool   `json:"has_leader"`
	Leader    string `json:"leader,omitempty"` // the leader's name
	Members   int    `json:"members"`
	Voters    int    `json:"voters"`
	Learners  int    `json:"learners"`
	// Size is the configured number of voters (cluster.size), 0 when not
	// known.
	Size int `json:"size,omitempty"`
	// NotAsked says why the cluster was not asked at all (the agent never
	// ran on this node: no certificate to ask with); "" when it was.
	NotAsked       string `json:"not_asked,omitempty"`
	HealthyMembers int    `json:"healthy_members"`
	// Answered counts endpoints that answered at all; 0 means the cluster
	// could not be reached from here.
	Answered int `json:"answered"`
	// Problems lists everything wrong, most severe first, each with a
	// stable code, a severity, the text and what to do. Any problem of
	// severity warning or worse keeps the exit code from 0.
	Problems []problem.Problem `json:"problems"`
}
