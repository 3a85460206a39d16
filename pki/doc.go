// Package pki issues and maintains the certificates an etcd node needs.
//
// A cluster shares one CA (ca.crt + ca.key, shipped to every node). Each node
// issues its own leaf certificates locally from that CA into a cert dir:
//
//	ca.crt                       the trust bundle etcd and clients verify against
//	server.crt / server.key      etcd client listener (also used as a client by etcd)
//	peer.crt / peer.key          etcd peer listener and peer client
//	client.crt / client.key      the agent's own client identity, CN "etcd-agent"
//	operator.crt / operator.key  for `etcd-agent status`, CN "etcd-operator"
//
// All keys are ECDSA P-256. EnsureNodeCerts is idempotent: it reuses a pair
// only while it still chains to the CA, matches its key, carries exactly the
// SANs the node needs now and is not due for renewal; otherwise it reissues
// and says why. Every file is written atomically (temp file, fsync, chmod,
// rename, fsync dir) with keys 0600 and certificates 0644.
//
// Nothing here logs: callers get what happened back as data (CertResult).
// Time is always passed in so callers and tests control the clock.
package pki

// File names inside a node's cert dir (and, for the CA, the CA dir).
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"

	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"

	PeerCertFile = "peer.crt"
	PeerKeyFile  = "peer.key"

	// ClientCertFile and ClientKeyFile hold the agent's own client cert, CN "etcd-agent".
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"

	// OperatorCertFile and OperatorKeyFile are used by `etcd-agent status`, CN "etcd-operator".
	OperatorCertFile = "operator.crt"
	OperatorKeyFile  = "operator.key"
)

// Common names of the client identities.
const (
	AgentCommonName = "etcd-agent"
	// PeerCommonName is every peer certificate's CN: etcd's peer port
	// accepts only it (--peer-cert-allowed-cn), so a client or operator
	// certificate from the same CA is refused there.
	PeerCommonName     = "etcd-peer"
	OperatorCommonName = "etcd-operator"
)

// File modes this package writes.
const (
	keyFileMode  = 0o600
	certFileMode = 0o644
	dirMode      = 0o700
)
