package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/runtime/embedded"
	"github.com/etcd-agent/etcd-agent/agent/runtime/podman"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

// NewIdentity returns the configured identity source.
func NewIdentity(cfg *config.Config, logger *slog.Logger) identity.Source {
	if cfg.Node.Identity == "static" {
		ip, _ := netip.ParseAddr(cfg.Node.IP) // validated by config
		return identity.Static{IP: ip, Name: cfg.Node.Name, Hostname: cfg.Node.Hostname}
	}
	return identity.IMDS{Endpoint: cfg.Node.IMDSEndpoint, Logger: logger}
}

// discovery is the configured discovery source (the test's, when set),
// built once: it runs after the certificates stage because a v3 discovery
// cluster is reached, by default, with the node's own CA and agent client
// certificate.
func (a *Agent) discovery() (discovery.Source, error) {
	a.discMu.Lock()
	defer a.discMu.Unlock()
	if a.disc != nil {
		return a.disc, nil
	}
	src := a.opts.Discovery
	if src == nil {
		var err error
		if src, err = newDiscovery(a.cfg, a.log); err != nil {
			return nil, err
		}
	}
	a.disc = src
	return src, nil
}

// newDiscovery builds the configured discovery source. It runs after the
// certificates stage because a v3 discovery cluster is reached, by default,
// with the node's own CA and agent client certificate.
func newDiscovery(cfg *config.Config, logger *slog.Logger) (discovery.Source, error) {
	d := cfg.Cluster.Discovery
	switch {
	case d.Token != "":
		tlsCfg, err := discoveryTLS(cfg)
		if err != nil {
			return nil, err
		}
		return &discovery.V3{Endpoints: d.Endpoints, Token: d.Token, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: logger}, nil
	case d.URL != "":
		return &discovery.V2{URL: d.URL, HTTPClient: &http.Client{Timeout: 30 * time.Second}, Logger: logger}, nil
	case d.Static != "":
		members, err := discovery.ParseStatic(d.Static)
		if err != nil {
			return nil, &config.Error{Problems: []config.Problem{{Field: "cluster.discovery.static", Value: d.Static, Problem: err.Error(), Fix: "write it like etcd-10-0-1-5=https://10.0.1.5:2380,..."}}}
		}
		return &discovery.Static{Members: members, Token: cfg.Cluster.Name}, nil
	}
	return nil, fmt.Errorf("no discovery source configured")
}

// discoveryTLS is the client TLS for a v3 discovery cluster: the configured
// files, or the node's CA bundle and agent client certificate. The client
// pair is read from disk at each connection, so a renewal reaches it; so is
// the node's CA bundle. A configured caCert (another cluster's CA, not ours
// to rotate) is read once.
func discoveryTLS(cfg *config.Config) (*tls.Config, error) {
	d := cfg.Cluster.Discovery
	var tlsCfg *tls.Config
	if d.CACert == "" {
		var err error
		if tlsCfg, err = pki.ReloadingClientTLS(cfg.PKI.Dir, pki.ClientCertFile, pki.ClientKeyFile); err != nil {
			return nil, fmt.Errorf("discovery TLS: %w", err)
		}
	} else {
		pem, err := os.ReadFile(d.CACert)
		if err != nil {
			return nil, fmt.Errorf("discovery TLS: read cluster.discovery.caCert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("discovery TLS: cluster.discovery.caCert %s holds no PEM certificate", d.CACert)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if d.Cert == "" {
			if tlsCfg.GetClientCertificate, err = pki.ReloadingKeyPair(filepath.Join(cfg.PKI.Dir, pki.ClientCertFile), filepath.Join(cfg.PKI.Dir, pki.ClientKeyFile)); err != nil {
				return nil, fmt.Errorf("discovery TLS: %w", err)
			}
		}
	}
	if d.Cert != "" {
		get, err := pki.ReloadingKeyPair(d.Cert, d.Key)
		if err != nil {
			return nil, fmt.Errorf("discovery TLS: load cluster.discovery.cert/key: %w", err)
		}
		tlsCfg.GetClientCertificate = get
	}
	return tlsCfg, nil
}

// NewRuntime returns the configured etcd runtime.
func NewRuntime(cfg *config.Config, logger *slog.Logger) (runtime.Runtime, error) {
	switch cfg.Etcd.Runtime {
	case "embedded":
		return embedded.New(embedded.Options{Logger: logger, StopTimeout: cfg.Podman.StopTimeout.D()}), nil
	case "podman":
		rt, err := podman.New(podman.Options{
			Socket: cfg.Podman.Socket, Image: cfg.Etcd.Image, ContainerName: cfg.Podman.ContainerName,
			StopTimeout: cfg.Podman.StopTimeout.D(), Logger: logger,
		})
		if err != nil {
			return nil, fmt.Errorf("podman runtime: %w", err)
		}
		return rt, nil
	}
	return nil, fmt.Errorf("unknown etcd.runtime %q", cfg.Etcd.Runtime)
}
