package etcdconf

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcd-agent/etcd-agent/internal/zapslog"
)

// EmbedConfig returns the embed.Config that runs the member in-process with
// the same settings as Flags. etcd logs through logger (its chatty info
// messages at debug level), so they land in the agent's log instead of
// interleaving with its output; nil logger: etcd logs to stderr.
// When InitialCluster is empty, cfg.InitialCluster is cleared: embed otherwise
// fills in "default=http://localhost:2380", which conflicts with a restart or
// with discovery.
func (s Spec) EmbedConfig(logger *slog.Logger) (*embed.Config, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("build embed config: %w", err)
	}
	n := s.normalized()
	cfg := embed.NewConfig()
	cfg.Name = n.Name
	cfg.Dir = n.DataDir

	var err error
	if cfg.ListenClientUrls, err = parseURLs(n.ListenClientURLs()...); err != nil {
		return nil, err
	}
	if cfg.AdvertiseClientUrls, err = parseURLs(n.ClientURL()); err != nil {
		return nil, err
	}
	if cfg.ListenPeerUrls, err = parseURLs(n.PeerURL()); err != nil {
		return nil, err
	}
	if cfg.AdvertisePeerUrls, err = parseURLs(n.PeerURL()); err != nil {
		return nil, err
	}

	cfg.ClientTLSInfo.TrustedCAFile = n.CertPath(CACertFile)
	cfg.ClientTLSInfo.CertFile = n.CertPath(ServerCertFile)
	cfg.ClientTLSInfo.KeyFile = n.CertPath(ServerKeyFile)
	cfg.ClientTLSInfo.ClientCertAuth = true
	cfg.ClientAutoTLS = false
	cfg.PeerTLSInfo.TrustedCAFile = n.CertPath(CACertFile)
	cfg.PeerTLSInfo.CertFile = n.CertPath(PeerCertFile)
	cfg.PeerTLSInfo.KeyFile = n.CertPath(PeerKeyFile)
	cfg.PeerTLSInfo.ClientCertAuth = true
	cfg.PeerTLSInfo.AllowedCNs = []string{PeerCommonName}
	cfg.PeerAutoTLS = false

	cfg.InitialCluster = n.InitialCluster
	if n.InitialClusterState != "" {
		cfg.ClusterState = n.InitialClusterState
	}
	if n.InitialClusterToken != "" {
		cfg.InitialClusterToken = n.InitialClusterToken
	}

	cfg.QuotaBackendBytes = n.QuotaBackendBytes
	cfg.AutoCompactionMode = n.AutoCompactionMode
	cfg.AutoCompactionRetention = n.AutoCompactionRetention
	if n.SnapshotCount > 0 {
		cfg.SnapshotCount = n.SnapshotCount
	}
	if n.HeartbeatMs > 0 {
		cfg.TickMs = n.HeartbeatMs
	}
	if n.ElectionMs > 0 {
		cfg.ElectionMs = n.ElectionMs
	}
	if err := setFeatureGates(cfg.ServerFeatureGate, corruptionGatesValue()); err != nil {
		return nil, fmt.Errorf("build embed config: %w", err)
	}
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{embed.StdErrLogOutput}
	if logger != nil {
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(logger))
	}

	for _, raw := range n.ExtraFlags {
		f, err := parseExtraFlag(raw)
		if err != nil {
			return nil, fmt.Errorf("build embed config: %w", err)
		}
		if err := applyExtraFlag(cfg, f); err != nil {
			return nil, fmt.Errorf("build embed config: %w", err)
		}
	}
	if logger != nil {
		logger.Debug("embedded etcd config built",
			"member", n.Name, "client_urls", strings.Join(n.ListenClientURLs(), ","),
			"peer_url", n.PeerURL(), "data_dir", n.DataDir, "bootstrap", n.InitialCluster != "")
	}
	return cfg, nil
}

func parseURLs(raw ...string) ([]url.URL, error) {
	out := make([]url.URL, 0, len(raw))
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("parse url %q: %w", r, err)
		}
		out = append(out, *u)
	}
	return out, nil
}
