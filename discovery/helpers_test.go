package discovery

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// testPKI is a CA in a temp dir that issues node certificates.
type testPKI struct {
	t  *testing.T
	ca *pki.CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	certPath, keyPath, err := pki.InitCA(dir, pki.CAOptions{CommonName: "discovery test CA"}, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(certPath, keyPath, now)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, ca: ca}
}

// node issues server, peer and client certs for ip and returns their dir.
func (p *testPKI) node(ip string) string {
	p.t.Helper()
	dir := filepath.Join(p.t.TempDir(), "certs")
	_, err := p.ca.EnsureNodeCerts(pki.NodeRequest{
		Dir: dir, NodeIP: netip.MustParseAddr(ip), Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now(),
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return dir
}

func (p *testPKI) clientTLS(dir string) *tls.Config {
	p.t.Helper()
	c, err := pki.ClientTLS(dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// discoveryService is a running Serve over TLS with client cert auth.
type discoveryService struct {
	Endpoint string
	TLS      *tls.Config // client config with the agent client cert
	CertDir  string      // ca.crt, client.crt, client.key for other clients
	Client   *clientv3.Client
}

func startDiscovery(t *testing.T, p *testPKI) *discoveryService {
	t.Helper()
	return startDiscoveryOn(t, p, "127.0.0.1")
}

// startDiscoveryOn is startDiscovery listening on ip.
func startDiscoveryOn(t *testing.T, p *testPKI, ip string) *discoveryService {
	t.Helper()
	dir := p.node(ip)
	ctx, cancel := context.WithCancel(context.Background())
	readyc := make(chan string, 1)
	done := make(chan error, 1)
	cfg := ServeConfig{
		DataDir:         filepath.Join(t.TempDir(), "data"),
		ListenClientURL: fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(t, ip)),
		ListenPeerURL:   fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(t, ip)),
		CertFile:        filepath.Join(dir, pki.ServerCertFile),
		KeyFile:         filepath.Join(dir, pki.ServerKeyFile),
		TrustedCAFile:   filepath.Join(dir, pki.CACertFile),
		ClientCertAuth:  true,
		Logger:          testLogger(t),
	}
	go func() { done <- Serve(ctx, cfg, func(ep string) { readyc <- ep }) }()
	var ep string
	select {
	case ep = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("Serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("discovery service not ready after 30s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	})
	ds := &discoveryService{Endpoint: ep, TLS: p.clientTLS(dir), CertDir: dir}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: ds.TLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ds.Client = c
	return ds
}

// v3 returns a V3 source for token on ds.
func (ds *discoveryService) v3(t *testing.T, token string) *V3 {
	return &V3{Endpoints: []string{ds.Endpoint}, Token: token, TLS: ds.TLS, Logger: testLogger(t)}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return nil
}

// binary finds a test binary: env, then ../bin/name.
func binary(t *testing.T, env, name, makeTarget string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found (%v): run make %s, or set %s", name, err, makeTarget, env)
	}
	return p
}

// startProcess runs bin with args until the test ends; its output goes to a
// file shown when the test fails.
func startProcess(t *testing.T, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(bin)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s %s output (tail):\n%s", bin, strings.Join(args, " "), tail(string(out), 40))
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func clientv3WithPrefix() []clientv3.OpOption { return []clientv3.OpOption{clientv3.WithPrefix()} }
