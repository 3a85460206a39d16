// Package statustest starts a real multi-member etcd cluster in-process for
// tests of `etcd-agent status`: embedded etcd members on their own loopback
// addresses, every listener TLS with client certificate auth, certificates
// issued by the project's pki package from one test CA.
package statustest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// readyTimeout bounds how long the cluster may take to form.
const readyTimeout = 60 * time.Second

// QuotaBytes is the backend quota every member is started with.
const QuotaBytes = 64 << 20

// Member is one running (or stopped) etcd member.
type Member struct {
	Name      string
	IP        string
	ClientURL string
	PeerURL   string
	CertDir   string // server/peer/client/operator certs for IP, and ca.crt
	DataDir   string

	config *embed.Config // how the member was first started
	mu     sync.Mutex
	etcd   *embed.Etcd
}

// Cluster is a running test cluster.
type Cluster struct {
	Members []*Member
	// CertDir is the first member's cert dir; its operator pair is what
	// `status` uses.
	CertDir string
}

// Start runs one member per IP (e.g. "127.0.0.41") as a new cluster and
// waits until every member is ready. The cluster is closed at test cleanup.
func Start(t testing.TB, ips ...string) *Cluster {
	t.Helper()
	members, initial, token := newMembers(t, ips)
	c := &Cluster{Members: members, CertDir: members[0].CertDir}
	t.Cleanup(c.Close)

	for _, m := range c.Members {
		m.config = memberConfig(m, initial, token)
		e, err := embed.StartEtcd(m.config)
		if err != nil {
			t.Fatalf("start etcd member %s: %v", m.Name, err)
		}
		m.mu.Lock()
		m.etcd = e
		m.mu.Unlock()
	}
	deadline := time.After(readyTimeout)
	for _, m := range c.Members {
		select {
		case <-m.etcd.Server.ReadyNotify():
		case err := <-m.etcd.Err():
			t.Fatalf("etcd member %s failed: %v", m.Name, err)
		case <-deadline:
			t.Fatalf("etcd member %s not ready within %s", m.Name, readyTimeout)
		}
	}
	return c
}

// newMembers issues certificates for one member per IP from a new test CA
// and picks its ports; it returns the members, the initial cluster string
// and a cluster token.
func newMembers(t testing.TB, ips []string) ([]*Member, string, string) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{CommonName: "status test CA"}, now)
	if err != nil {
		t.Fatalf("init CA: %v", err)
	}
	ca, err := pki.LoadCA(caCert, caKey, now)
	if err != nil {
		t.Fatalf("load CA: %v", err)
	}
	var members []*Member
	var initial []string
	for i, ip := range ips {
		m := &Member{
			Name:      fmt.Sprintf("etcd-%s", strings.ReplaceAll(ip, ".", "-")),
			IP:        ip,
			ClientURL: fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(t, ip)),
			PeerURL:   fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(t, ip)),
			CertDir:   filepath.Join(dir, fmt.Sprintf("pki-%d", i)),
			DataDir:   filepath.Join(dir, fmt.Sprintf("data-%d", i)),
		}
		if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: m.CertDir, NodeIP: netip.MustParseAddr(ip),
			Validity: 365 * 24 * time.Hour, RenewBefore: 24 * time.Hour, Now: now}); err != nil {
			t.Fatalf("issue certs for %s: %v", ip, err)
		}
		initial = append(initial, m.Name+"="+m.PeerURL)
		members = append(members, m)
	}
	return members, strings.Join(initial, ","), fmt.Sprintf("status-test-%d", now.UnixNano())
}

// corruptionGates are the etcd feature gates etcd-agent turns on for every
// member (etcdconf); the test members run with them too.
const corruptionGates = "CompactHashCheck=true,InitialCorruptCheck=true"

// memberConfig is the embed.Config of one member of a new static cluster,
// TLS and client cert auth on both listeners, corruption checks on.
func memberConfig(m *Member, initialCluster, token string) *embed.Config {
	cu, _ := url.Parse(m.ClientURL)
	pu, _ := url.Parse(m.PeerURL)
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.DataDir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenMetricsUrls = nil
	// Static bootstrap only: no discovery settings may be set alongside.
	cfg.InitialCluster = initialCluster
	cfg.InitialClusterToken = token
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.QuotaBackendBytes = QuotaBytes
	cfg.ClientTLSInfo.CertFile = filepath.Join(m.CertDir, pki.ServerCertFile)
	cfg.ClientTLSInfo.KeyFile = filepath.Join(m.CertDir, pki.ServerKeyFile)
	cfg.ClientTLSInfo.TrustedCAFile = filepath.Join(m.CertDir, pki.CACertFile)
	cfg.ClientTLSInfo.ClientCertAuth = true
	cfg.PeerTLSInfo.CertFile = filepath.Join(m.CertDir, pki.PeerCertFile)
	cfg.PeerTLSInfo.KeyFile = filepath.Join(m.CertDir, pki.PeerKeyFile)
	cfg.PeerTLSInfo.TrustedCAFile = filepath.Join(m.CertDir, pki.CACertFile)
	cfg.PeerTLSInfo.ClientCertAuth = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if err := cfg.ServerFeatureGate.(featuregate.MutableFeatureGate).Set(corruptionGates); err != nil {
		panic(fmt.Sprintf("etcd refuses the corruption-check gates: %v", err))
	}
	return cfg
}

// Config is a fresh copy of the configuration member i was started with
// (corruption checks on), to change and pass to StartMember.
func (c *Cluster) Config(i int) *embed.Config {
	m := c.Members[i]
	return memberConfig(m, m.config.InitialCluster, m.config.InitialClusterToken)
}

// StartMember starts the stopped member i again with cfg (its data dir kept)
// and waits until it is ready. It returns etcd's error when etcd refuses to
// start, e.g. when its initial corruption check finds the member's data
// differs from its peers'.
func (c *Cluster) StartMember(i int, cfg *embed.Config) error {
	m := c.Members[i]
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd member %s failed: %w", m.Name, err)
	case <-time.After(readyTimeout):
		e.Close()
		return fmt.Errorf("etcd member %s not ready within %s", m.Name, readyTimeout)
	}
	m.mu.Lock()
	m.etcd = e
	m.mu.Unlock()
	return nil
}

// Endpoints are the client URLs of all members, stopped ones included.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// OperatorTLS is the operator's client TLS config, as `status` loads it.
func (c *Cluster) OperatorTLS(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientTLS(c.CertDir, pki.OperatorCertFile, pki.OperatorKeyFile)
	if err != nil {
		t.Fatalf("load operator TLS: %v", err)
	}
	return cfg
}

// Leader returns the index of the member that is leader now, as the members
// themselves see it, or -1.
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		m.mu.Lock()
		e := m.etcd
		m.mu.Unlock()
		if e == nil {
			continue
		}
		if e.Server.Lead() == uint64(e.Server.MemberID()) {
			return i
		}
	}
	return -1
}

// Stop closes member i; its row in status must show an error from then on.
func (c *Cluster) Stop(i int) {
	m := c.Members[i]
	m.mu.Lock()
	e := m.etcd
	m.etcd = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Close stops every member still running.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := range c.Members {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
}

// WaitLinearizable waits until member i serves a linearizable request, so
// tests start from a settled cluster (a leader elected and known to all).
func (c *Cluster) WaitLinearizable(ctx context.Context, i int) error {
	m := c.Members[i]
	m.mu.Lock()
	e := m.etcd
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("wait for member %s: stopped", m.Name)
	}
	if err := e.Server.LinearizableReadNotify(ctx); err != nil {
		return fmt.Errorf("wait for member %s: %w", m.Name, err)
	}
	return nil
}
