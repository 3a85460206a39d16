package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcd-agent/etcd-agent/internal/zapslog"
)

// serveStartTimeout bounds how long the embedded etcd may take to be ready.
const serveStartTimeout = time.Minute

// ServeConfig configures a discovery service, a one-member etcd cluster
// that holds discovery registries.
type ServeConfig struct {
	DataDir         string // etcd data dir; reused across restarts
	ListenClientURL string // https://IP:PORT; plaintext is refused
	// AdvertiseClientURL is the URL nodes use; "" = ListenClientURL.
	AdvertiseClientURL string
	// ListenPeerURL is the (unused, single-member) peer listener; "" = a
	// free port on 127.0.0.1, with the same certificate as the client side.
	ListenPeerURL string
	CertFile      string // server certificate, required
	KeyFile       string // its key, required
	TrustedCAFile string // CA for client certificates; required with ClientCertAuth
	// ClientCertAuth requires clients to present a certificate signed by
	// TrustedCAFile.
	ClientCertAuth bool
	Logger         *slog.Logger // nil = discard; etcd's info logs become debug
}

// Validate checks the config and names the offending field.
func (c ServeConfig) Validate() error {
	if c.DataDir == "" {
		return errors.New("check discovery serve config: DataDir is empty: give a data directory")
	}
	if c.ListenClientURL == "" {
		return errors.New("check discovery serve config: ListenClientURL is empty: give https://IP:PORT")
	}
	for name, raw := range map[string]string{"ListenClientURL": c.ListenClientURL, "AdvertiseClientURL": c.AdvertiseClientURL, "ListenPeerURL": c.ListenPeerURL} {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Port() == "" {
			return fmt.Errorf("check discovery serve config: %s %q: want https://IP:PORT (no plaintext listener)", name, raw)
		}
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return errors.New("check discovery serve config: CertFile and KeyFile are required: the service only speaks TLS")
	}
	if c.ClientCertAuth && c.TrustedCAFile == "" {
		return errors.New("check discovery serve config: ClientCertAuth needs TrustedCAFile to verify client certificates")
	}
	return nil
}

// Serve runs a discovery service until ctx ends: an embedded one-member etcd
// with TLS on the client side. ready, if not nil, is called with the client
// endpoint once etcd serves requests. A clean shutdown returns nil.
func Serve(ctx context.Context, cfg ServeConfig, ready func(endpoint string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	lg := discard(cfg.Logger)
	ecfg, err := embedConfig(cfg, lg)
	if err != nil {
		return err
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return fmt.Errorf("start discovery service on %s: %w", cfg.ListenClientURL, err)
	}
	defer e.Close()

	start := time.NewTimer(serveStartTimeout)
	defer start.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("start discovery service on %s: %w", cfg.ListenClientURL, err)
	case <-start.C:
		return fmt.Errorf("start discovery service on %s: not ready after %s", cfg.ListenClientURL, serveStartTimeout)
	case <-ctx.Done():
		return nil
	}
	endpoint := ecfg.AdvertiseClientUrls[0].String()
	lg.Info("discovery service ready", "endpoint", endpoint, "data_dir", cfg.DataDir, "client_cert_auth", cfg.ClientCertAuth)
	if ready != nil {
		ready(endpoint)
	}
	select {
	case <-ctx.Done():
		lg.Info("discovery service stopping", "endpoint", endpoint)
		return nil
	case err := <-e.Err():
		return fmt.Errorf("serve discovery on %s: %w", endpoint, err)
	}
}

func embedConfig(cfg ServeConfig, lg *slog.Logger) (*embed.Config, error) {
	listen, err := url.Parse(cfg.ListenClientURL)
	if err != nil {
		return nil, fmt.Errorf("parse ListenClientURL: %w", err)
	}
	advertise := listen
	if cfg.AdvertiseClientURL != "" {
		if advertise, err = url.Parse(cfg.AdvertiseClientURL); err != nil {
			return nil, fmt.Errorf("parse AdvertiseClientURL: %w", err)
		}
	}
	peerRaw := cfg.ListenPeerURL
	if peerRaw == "" {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, fmt.Errorf("pick peer port: %w", err)
		}
		peerRaw = fmt.Sprintf("https://127.0.0.1:%d", port)
	}
	peer, err := url.Parse(peerRaw)
	if err != nil {
		return nil, fmt.Errorf("parse ListenPeerURL: %w", err)
	}

	ecfg := embed.NewConfig()
	ecfg.Name = "discovery"
	ecfg.Dir = cfg.DataDir
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(lg))
	ecfg.ListenClientUrls = []url.URL{*listen}
	ecfg.AdvertiseClientUrls = []url.URL{*advertise}
	ecfg.ListenPeerUrls = []url.URL{*peer}
	ecfg.AdvertisePeerUrls = []url.URL{*peer}
	ecfg.InitialCluster = ecfg.Name + "=" + peer.String()
	ecfg.InitialClusterToken = "etcd-agent-discovery"
	ecfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       cfg.CertFile,
		KeyFile:        cfg.KeyFile,
		TrustedCAFile:  cfg.TrustedCAFile,
		ClientCertAuth: cfg.ClientCertAuth,
	}
	ecfg.PeerTLSInfo = transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
	// Registries are tiny but tokens accumulate: keep history short.
	ecfg.AutoCompactionMode = "periodic"
	ecfg.AutoCompactionRetention = "1h"
	return ecfg, nil
}

// freeLoopbackPort asks the kernel for a free TCP port on 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listen on 127.0.0.1:0: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
