package etcdconf

import "strings"

// Flags is the etcd command line for s, without the binary, in a fixed order:
// identity, listeners, TLS, tuning, the corruption-check feature gates,
// logging, ExtraFlags as given, then bootstrap. An ExtraFlags --feature-gates
// adds to the agent's gates (etcd applies repeated --feature-gates in order).
// Call Validate first; Flags does not check s.
func (s Spec) Flags() []string {
	return append(s.memberFlags(), s.bootstrapFlags()...)
}

// memberFlags are the flags that matter on every start. They, not the
// bootstrap-only flags, make up Hash.
func (s Spec) memberFlags() []string {
	n := s.normalized()
	f := []string{
		"--name=" + n.Name,
		"--data-dir=" + n.DataDir,
		"--listen-client-urls=" + strings.Join(n.ListenClientURLs(), ","),
		"--advertise-client-urls=" + n.ClientURL(),
		"--listen-peer-urls=" + n.PeerURL(),
		"--initial-advertise-peer-urls=" + n.PeerURL(),
		"--trusted-ca-file=" + n.CertPath(CACertFile),
		"--cert-file=" + n.CertPath(ServerCertFile),
		"--key-file=" + n.CertPath(ServerKeyFile),
		"--client-cert-auth=true",
		"--peer-trusted-ca-file=" + n.CertPath(CACertFile),
		"--peer-cert-file=" + n.CertPath(PeerCertFile),
		"--peer-key-file=" + n.CertPath(PeerKeyFile),
		"--peer-client-cert-auth=true",
		"--peer-cert-allowed-cn=" + PeerCommonName,
		"--quota-backend-bytes=" + itoa(n.QuotaBackendBytes),
		"--auto-compaction-mode=" + n.AutoCompactionMode,
		"--auto-compaction-retention=" + n.AutoCompactionRetention,
	}
	if n.SnapshotCount > 0 {
		f = append(f, "--snapshot-count="+itoa(n.SnapshotCount))
	}
	if n.HeartbeatMs > 0 {
		f = append(f, "--heartbeat-interval="+itoa(n.HeartbeatMs))
	}
	if n.ElectionMs > 0 {
		f = append(f, "--election-timeout="+itoa(n.ElectionMs))
	}
	f = append(f, "--"+featureGatesFlag+"="+corruptionGatesValue())
	f = append(f, "--logger=zap", "--log-outputs=stderr")
	return append(f, n.ExtraFlags...)
}

// bootstrapFlags are read by etcd only while the member is not yet
// initialized; with a data dir etcd ignores them.
func (s Spec) bootstrapFlags() []string {
	n := s.normalized()
	var f []string
	if n.InitialCluster != "" {
		f = append(f, "--initial-cluster="+n.InitialCluster)
	}
	if n.InitialClusterState != "" {
		f = append(f, "--initial-cluster-state="+n.InitialClusterState)
	}
	if n.InitialClusterToken != "" {
		f = append(f, "--initial-cluster-token="+n.InitialClusterToken)
	}
	return f
}
