package etcdconf

import (
	"net/netip"
	"path/filepath"
	"strconv"
)

// Defaults applied by Spec methods when a field is left at its zero value.
const (
	DefaultClientPort = 2379
	DefaultPeerPort   = 2380
	// DefaultQuotaBackendBytes is 4 GiB: twice etcd's own 2 GiB default, half of
	// the 8 GiB etcd documents as the largest sensible quota. Room for a busy
	// Kubernetes or Patroni cluster while defragmentation and snapshots stay
	// quick.
	DefaultQuotaBackendBytes int64 = 4 << 30
	// DefaultAutoCompactionMode and DefaultAutoCompactionRetention keep one hour
	// of history. etcd itself does not compact unless told, and its database
	// then grows until it hits the quota.
	DefaultAutoCompactionMode      = "periodic"
	DefaultAutoCompactionRetention = "1h"
	// DefaultInitialClusterState is used when InitialCluster is set and
	// InitialClusterState is not.
	DefaultInitialClusterState = "new"
)

// Certificate file names inside Spec.CertDir. They are the names the pki
// package writes (pki.CACertFile, pki.ServerCertFile, ...).
const (
	CACertFile     = "ca.crt"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	PeerCertFile   = "peer.crt"
	PeerKeyFile    = "peer.key"
)

// PeerCommonName is the CN of every peer certificate (pki.PeerCommonName):
// the peer port accepts no other, so client and operator certificates from
// the same CA are refused there.
const PeerCommonName = "etcd-peer"

// Spec is the configuration of the local etcd member. The zero value of an
// optional field means the documented default.
type Spec struct {
	// Name is the member name, unique in the cluster. Required.
	Name string
	// DataDir is the absolute path of the member's data directory. Required.
	DataDir string
	// NodeIP is the address the member listens on and advertises. Required.
	// A loopback address (127.0.0.x, local mode) is the only client listener;
	// otherwise the member also listens on 127.0.0.1 for local clients (TLS too).
	NodeIP netip.Addr
	// ClientPort and PeerPort default to 2379 and 2380.
	ClientPort, PeerPort int
	// CertDir is the absolute path of the directory holding ca.crt, server.crt,
	// server.key, peer.crt and peer.key. Required.
	CertDir string
	// InitialCluster is "name=https://ip:2380,..." when the member bootstraps or
	// joins; empty when it restarts with an existing data dir (etcd then ignores
	// all initial-* settings anyway).
	InitialCluster string
	// InitialClusterState is "new" or "existing"; default "new" when
	// InitialCluster is set.
	InitialClusterState string
	// InitialClusterToken is the cluster token used while bootstrapping.
	InitialClusterToken string
	// QuotaBackendBytes is the backend quota; 0 means DefaultQuotaBackendBytes.
	QuotaBackendBytes int64
	// AutoCompactionMode is "periodic" or "revision"; default "periodic".
	AutoCompactionMode string
	// AutoCompactionRetention is a duration ("1h") in periodic mode or a revision
	// count in revision mode; default "1h". "0" disables auto-compaction.
	AutoCompactionRetention string
	// SnapshotCount, HeartbeatMs and ElectionMs: 0 means etcd's default.
	SnapshotCount           uint64
	HeartbeatMs, ElectionMs uint
	// Image is the container image that runs the member (the Podman runtime;
	// the embedded runtime is the agent's own etcd). Zero: the runtime's
	// configured image. A change rolls through the cluster like a flag's.
	Image string
	// ExtraFlags are expert etcd flags "--flag=value" passed through unchanged,
	// after the agent's own. Flags the agent owns are rejected by Validate.
	ExtraFlags []string
}

// normalized returns s with defaults filled in and paths cleaned.
func (s Spec) normalized() Spec {
	if s.ClientPort == 0 {
		s.ClientPort = DefaultClientPort
	}
	if s.PeerPort == 0 {
		s.PeerPort = DefaultPeerPort
	}
	if s.QuotaBackendBytes == 0 {
		s.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if s.AutoCompactionMode == "" {
		s.AutoCompactionMode = DefaultAutoCompactionMode
	}
	if s.AutoCompactionRetention == "" {
		s.AutoCompactionRetention = DefaultAutoCompactionRetention
	}
	if s.InitialCluster != "" && s.InitialClusterState == "" {
		s.InitialClusterState = DefaultInitialClusterState
	}
	if s.DataDir != "" {
		s.DataDir = filepath.Clean(s.DataDir)
	}
	if s.CertDir != "" {
		s.CertDir = filepath.Clean(s.CertDir)
	}
	return s
}

// ClientURL is the URL clients use to reach this member: https://<ip>:<client port>.
func (s Spec) ClientURL() string {
	return httpsURL(s.NodeIP, s.normalized().ClientPort)
}

// PeerURL is the URL peers use to reach this member: https://<ip>:<peer port>.
func (s Spec) PeerURL() string {
	return httpsURL(s.NodeIP, s.normalized().PeerPort)
}

// ListenClientURLs are the client listeners: the node IP and, unless the node
// IP is itself a loopback address, https://127.0.0.1 for local clients.
func (s Spec) ListenClientURLs() []string {
	n := s.normalized()
	urls := []string{httpsURL(n.NodeIP, n.ClientPort)}
	if !n.NodeIP.IsLoopback() {
		urls = append(urls, httpsURL(netip.AddrFrom4([4]byte{127, 0, 0, 1}), n.ClientPort))
	}
	return urls
}

// Ports returns the TCP ports the member binds: client and peer.
func (s Spec) Ports() (client, peer int) {
	n := s.normalized()
	return n.ClientPort, n.PeerPort
}

// CertPath returns the path of a certificate file (one of the *File constants)
// inside CertDir.
func (s Spec) CertPath(file string) string {
	return filepath.Join(s.normalized().CertDir, file)
}

func httpsURL(ip netip.Addr, port int) string {
	return "https://" + netip.AddrPortFrom(ip.Unmap(), uint16(port)).String()
}

func itoa[T ~int | ~int64 | ~uint | ~uint64](v T) string {
	if v < 0 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatUint(uint64(v), 10)
}
