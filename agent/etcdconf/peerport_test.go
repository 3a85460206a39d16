package etcdconf_test

import (
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestPeerPortTakesPeerCertsOnly runs a real member with the agent's own
// etcd configuration and the issued certificates: on its peer port the peer
// certificate is served, the agent's client and the operator's certificates
// (same CA) are refused.
func TestPeerPortTakesPeerCertsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd member")
	}
	dir := t.TempDir()
	now := time.Now()
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caCert, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("127.0.4.1")
	certDir := filepath.Join(dir, "pki")
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: certDir, NodeIP: ip, Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	spec := etcdconf.Spec{Name: "peer-test", DataDir: filepath.Join(dir, "data"), NodeIP: ip,
		ClientPort: testnet.FreePort(t, ip.String()), PeerPort: testnet.FreePort(t, ip.String()), CertDir: certDir}
	spec.InitialCluster = "peer-test=" + spec.PeerURL()
	spec.InitialClusterToken = "peer-test"
	cfg, err := spec.EmbedConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}

	_, peerClient, err := pki.PeerTLS(certDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cert, key string
		ok              bool
	}{
		{"peer certificate", pki.PeerCertFile, pki.PeerKeyFile, true},
		{"agent client certificate", pki.ClientCertFile, pki.ClientKeyFile, false},
		{"operator certificate", pki.OperatorCertFile, pki.OperatorKeyFile, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair, err := pki.ClientTLS(certDir, tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			cfg := peerClient.Clone()
			cfg.VerifyPeerCertificate = nil // the server's peer cert is checked by the CA as usual
			cfg.Certificates = pair.Certificates
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			defer hc.CloseIdleConnections()
			resp, err := hc.Get(spec.PeerURL() + "/members")
			if tc.ok {
				if err != nil {
					t.Fatalf("peer certificate refused: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /members with the peer certificate: %s %s", resp.Status, body)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s accepted on the peer port: %s", tc.name, resp.Status)
			}
		})
	}
}
