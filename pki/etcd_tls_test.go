package pki_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestIssuedCertsServeEtcd runs a real embedded etcd member with the issued
// server and peer certificates and client certificate auth on both sides,
// then talks to it with the issued client and operator certificates, and
// checks that a client without a certificate is refused.
func TestIssuedCertsServeEtcd(t *testing.T) {
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
	const ip = "127.0.0.31"
	certDir := filepath.Join(dir, "pki")
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: certDir, NodeIP: netip.MustParseAddr(ip),
		Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}

	clientURL := url.URL{Scheme: "https", Host: fmt.Sprintf("%s:%d", ip, testnet.FreePort(t, ip))}
	peerURL := url.URL{Scheme: "https", Host: fmt.Sprintf("%s:%d", ip, testnet.FreePort(t, ip))}
	cfg := embed.NewConfig()
	cfg.Name = "tls-test"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.InitialCluster = "tls-test=" + peerURL.String()
	cfg.ClientTLSInfo.CertFile = filepath.Join(certDir, pki.ServerCertFile)
	cfg.ClientTLSInfo.KeyFile = filepath.Join(certDir, pki.ServerKeyFile)
	cfg.ClientTLSInfo.TrustedCAFile = filepath.Join(certDir, pki.CACertFile)
	cfg.ClientTLSInfo.ClientCertAuth = true
	cfg.PeerTLSInfo.CertFile = filepath.Join(certDir, pki.PeerCertFile)
	cfg.PeerTLSInfo.KeyFile = filepath.Join(certDir, pki.PeerKeyFile)
	cfg.PeerTLSInfo.TrustedCAFile = filepath.Join(certDir, pki.CACertFile)
	cfg.PeerTLSInfo.ClientCertAuth = true
	cfg.ListenMetricsUrls = nil
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not become ready")
	}

	// An application's certificate (`etcd-agent cert issue`), in its own
	// directory with its copy of the CA certificate.
	appDir := filepath.Join(dir, "app")
	if _, err := ca.IssueAppClient(appDir, "patroni", time.Hour, now, false); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][3]string{{certDir, pki.ClientCertFile, pki.ClientKeyFile}, {certDir, pki.OperatorCertFile, pki.OperatorKeyFile}, {appDir, "patroni.crt", "patroni.key"}} {
		tlsCfg, err := pki.ClientTLS(pair[0], pair[1], pair[2])
		if err != nil {
			t.Fatal(err)
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL.String()}, TLS: tlsCfg,
			DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := cli.Put(ctx, "k", pair[1]); err != nil {
			t.Fatalf("put with %s: %v", pair[1], err)
		}
		resp, err := cli.Get(ctx, "k")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != pair[1] {
			t.Fatalf("get with %s: %v %v", pair[1], resp, err)
		}
		cancel()
		cli.Close()
	}

	// Same CA trust, no client certificate: the server must refuse the
	// handshake. Raw TLS gives a definite answer where the gRPC client
	// would just retry until its deadline.
	trust, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	trust.Certificates = nil
	conn, err := tls.Dial("tcp", clientURL.Host, trust)
	if err == nil {
		// TLS 1.3 reports a missing client cert on the first read.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connection without client cert: err = %v, want a certificate error", err)
	}

	// And a plaintext client gets nowhere: there is no plaintext listener.
	plain, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + clientURL.Host}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = plain.Get(ctx, "k")
		cancel()
		plain.Close()
	}
	if err == nil {
		t.Fatal("plaintext client read succeeded")
	}
}
