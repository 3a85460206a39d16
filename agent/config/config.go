// Package config loads, defaults and validates the agent's configuration file
// (/etc/etcd-agent/config.yaml by default).
//
// Every field documents its zero value. Load rejects unknown keys, and every
// validation failure names the field, the bad value and the fix, so a typo in
// user data fails the first boot loudly instead of silently running defaults.
// The agent exits with ExitCode on any *Error so that the systemd unit's
// RestartPreventExitStatus stops a restart loop on a config mistake.
package config

import (
	"time"
)

// DefaultPath is where the Butane config drops the agent's configuration.
const DefaultPath = "/etc/etcd-agent/config.yaml"

// ExitCode is the process exit code for every configuration error
// (EX_CONFIG from sysexits.h). The systemd unit lists it in
// RestartPreventExitStatus.
const ExitCode = 78

// Config is the whole agent configuration.
type Config struct {
	Cluster Cluster `yaml:"cluster,omitempty"`
	Node    Node    `yaml:"node,omitempty"`
	PKI     PKI     `yaml:"pki,omitempty"`
	Etcd    Etcd    `yaml:"etcd,omitempty"`
	Podman  Podman  `yaml:"podman,omitempty"`
	Agent   Agent   `yaml:"agent,omitempty"`
	// Maintenance: defragmentation and NOSPACE recovery (maintenance.go).
	Maintenance Maintenance `yaml:"maintenance,omitempty"`
	Metrics     Metrics     `yaml:"metrics,omitempty"`
	Backup      Backup      `yaml:"backup,omitempty"`
	// Clients: how applications find the cluster (clients.go).
	Clients Clients `yaml:"clients,omitempty"`
	// Fleet: EC2 notices and Auto Scaling lifecycle hooks (fleet.go).
	Fleet Fleet `yaml:"fleet,omitempty"`
	// FleetLock: coordinated OS reboots through Zincati (fleetlock.go).
	FleetLock FleetLock `yaml:"fleetLock,omitempty"`
}

// Cluster describes the cluster this node belongs to.
type Cluster struct {
	// Name labels the cluster in status and logs. Zero: "etcd".
	Name string `yaml:"name,omitempty"`
	// Size is the desired number of voting members. Zero: 3.
	// Even sizes are allowed but warned about: they add no fault tolerance.
	Size int `yaml:"size,omitempty"`
	// Discovery says how founding members find each other. Exactly one
	// source must be set.
	Discovery Discovery `yaml:"discovery,omitempty"`
	// DeadMemberGrace is how long a member must be unreachable before the
	// agent may remove it to make room for a replacement, measured by the
	// removing agent's own probes. Zero: 10m. At least MinDeadMemberGrace.
	DeadMemberGrace Duration `yaml:"deadMemberGrace,omitempty"`
}

// Discovery selects one discovery source.
type Discovery struct {
	// Endpoints and Token select etcd's v3 discovery protocol against a
	// discovery etcd cluster (the default and recommended source).
	Endpoints []string `yaml:"endpoints,omitempty"`
	Token     string   `yaml:"token,omitempty"`
	// URL selects the v2 discovery protocol (https://discovery.etcd.io/<token>
	// or a self-hosted /v2/keys/_etcd/registry/<token>).
	URL string `yaml:"url,omitempty"`
	// Static is a fixed founding peer list "name=https://ip:2380,...".
	Static string `yaml:"static,omitempty"`
	// CACert, Cert and Key are the TLS files for reaching a v3 discovery
	// cluster. Zero: the node's own CA and agent client certificate.
	CACert string `yaml:"caCert,omitempty"`
	Cert   string `yaml:"cert,omitempty"`
	Key    string `yaml:"key,omitempty"`
}

// Node describes this machine.
type Node struct {
	// Identity is "imds" (EC2 instance metadata, IMDSv2 only) or "static".
	// Zero: "imds".
	Identity string `yaml:"identity,omitempty"`
	// IP, Name and Hostname are the static identity. IP is required when
	// Identity is "static"; Name zero: derived from IP ("etcd-10-0-1-5").
	IP       string `yaml:"ip,omitempty"`
	Name     string `yaml:"name,omitempty"`
	Hostname string `yaml:"hostname,omitempty"`
	// IMDSEndpoint overrides the instance metadata endpoint (tests, proxies).
	// Zero: the SDK default http://169.254.169.254.
	IMDSEndpoint string `yaml:"imdsEndpoint,omitempty"`
	// DataDir holds the etcd member data. Zero: /var/lib/etcd-agent/data.
	DataDir string `yaml:"dataDir,omitempty"`
}

// PKI locates the shipped CA and the node's issued certificates.
type PKI struct {
	// CACert and CAKey are the shipped CA. Zero: /etc/etcd-agent/ca.{crt,key}.
	// The key must not be readable by group or others.
	CACert string `yaml:"caCert,omitempty"`
	CAKey  string `yaml:"caKey,omitempty"`
	// Dir receives the issued certificates. Zero: /var/lib/etcd-agent/pki.
	Dir string `yaml:"dir,omitempty"`
	// Validity of issued leaf certificates. Zero: 365d.
	Validity Duration `yaml:"validity,omitempty"`
	// RenewBefore reissues a certificate with less than this left. Zero: 30d.
	RenewBefore Duration `yaml:"renewBefore,omitempty"`
}

// Etcd configures the etcd member the agent runs.
type Etcd struct {
	// Runtime is "podman" (production) or "embedded" (in-process).
	// Zero: "podman".
	Runtime string `yaml:"runtime,omitempty"`
	// Image is the etcd container image. Zero: the official image at the
	// etcd version this agent was built with.
	Image string `yaml:"image,omitempty"`
	// ClientPort and PeerPort. Zero: 2379 and 2380.
	ClientPort int `yaml:"clientPort,omitempty"`
	PeerPort   int `yaml:"peerPort,omitempty"`
	// QuotaBackendBytes is the backend size quota. Zero: 4 GiB.
	QuotaBackendBytes Size `yaml:"quotaBackendBytes,omitempty"`
	// AutoCompactionRetention keeps this much revision history (periodic
	// mode). Zero: 1h. etcd's own default is off, which fills the quota.
	AutoCompactionRetention Duration `yaml:"autoCompactionRetention,omitempty"`
	// SnapshotCount is how many applied entries trigger a Raft snapshot
	// (etcd's --snapshot-count). Zero: etcd's default (10000).
	SnapshotCount int64 `yaml:"snapshotCount,omitempty"`
	// HeartbeatInterval is the Raft heartbeat (etcd's --heartbeat-interval),
	// in whole milliseconds. Zero: etcd's default (100ms).
	HeartbeatInterval Duration `yaml:"heartbeatInterval,omitempty"`
	// ElectionTimeout is the Raft election timeout (etcd's
	// --election-timeout), in whole milliseconds: at least 5 times the
	// heartbeat interval and at most 50s. Zero: etcd's default (1s).
	ElectionTimeout Duration `yaml:"electionTimeout,omitempty"`
	// ExtraFlags are passed to etcd verbatim ("--flag=value"); flags the agent
	// owns (names, URLs, TLS, cluster bootstrap, the settings above) are
	// refused, and so are flags etcd does not know or values it would reject.
	ExtraFlags []string `yaml:"extraFlags,omitempty"`
}

// Podman configures the container runtime.
type Podman struct {
	// Socket is the Podman API socket URI. Zero:
	// unix://$XDG_RUNTIME_DIR/podman/podman.sock (the agent user's rootless socket).
	Socket string `yaml:"socket,omitempty"`
	// ContainerName. Zero: "etcd".
	ContainerName string `yaml:"containerName,omitempty"`
	// StopTimeout is how long etcd gets to stop before it is killed.
	// Zero: 30s.
	StopTimeout Duration `yaml:"stopTimeout,omitempty"`
}

// Agent configures the agent process itself.
type Agent struct {
	// StatusFile is where the agent publishes its state for `status`.
	// Zero: /run/etcd-agent/status.json.
	StatusFile string `yaml:"statusFile,omitempty"`
	// LogLevel is debug, info, warn or error. Zero: info.
	LogLevel string `yaml:"logLevel,omitempty"`
	// LogFormat is text (logfmt, for journalctl) or json (one object per
	// line, for a log shipper). Zero: text.
	LogFormat string `yaml:"logFormat,omitempty"`
	// HealthInterval is the supervision loop period. Zero: 5s.
	HealthInterval Duration `yaml:"healthInterval,omitempty"`
	// APIPort is where the agent answers the other agents on the node's
	// address (TLS, peer certificates only): what they must learn even when
	// etcd cannot answer, such as how far this member's WAL reaches before
	// a recovery. Zero: 2383. Open it between the nodes like 2380.
	APIPort int `yaml:"apiPort,omitempty"`
}

// Defaults for zero values; see the field comments.
const (
	DefaultClusterName     = "etcd"
	DefaultClusterSize     = 3
	DefaultDeadMemberGrace = 10 * time.Minute
	// MinDeadMemberGrace is the shortest grace accepted: long enough for
	// several probe rounds and an etcd leader election.
	MinDeadMemberGrace = 3 * time.Second
	// MinValidity is the shortest certificate validity accepted (tests of
	// renewal use a few minutes; production a year).
	MinValidity           = 2 * time.Minute
	DefaultDataDir        = "/var/lib/etcd-agent/data"
	DefaultPKIDir         = "/var/lib/etcd-agent/pki"
	DefaultCACert         = "/etc/etcd-agent/ca.crt"
	DefaultCAKey          = "/etc/etcd-agent/ca.key"
	DefaultValidity       = 365 * 24 * time.Hour
	DefaultRenewBefore    = 30 * 24 * time.Hour
	DefaultClientPort     = 2379
	DefaultPeerPort       = 2380
	DefaultQuota          = 4 << 30
	DefaultCompaction     = time.Hour
	DefaultContainerName  = "etcd"
	DefaultStopTimeout    = 30 * time.Second
	DefaultStatusFile     = "/run/etcd-agent/status.json"
	DefaultHealthInterval = 5 * time.Second
	DefaultAgentAPIPort   = 2383
	DefaultImageRepo      = "gcr.io/etcd-development/etcd"
)
