package testcluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// ServeDiscovery runs a TLS v3 discovery service in this process on IP(0)
// (a free port) until ctx ends, creates a token for size founders, and
// makes it the nodes' discovery. It returns the service's URL and the
// token.
func (e *Env) ServeDiscovery(ctx context.Context, size int) (url, token string) {
	e.T.Helper()
	ip := e.IP(0)
	url = fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(e.T, ip))
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- discovery.Serve(ctx, discovery.ServeConfig{
			DataDir: filepath.Join(e.Dir, "discovery-data"), ListenClientURL: url,
			CertFile: filepath.Join(e.TestPKI, pki.ServerCertFile), KeyFile: filepath.Join(e.TestPKI, pki.ServerKeyFile),
			TrustedCAFile: filepath.Join(e.TestPKI, pki.CACertFile), ClientCertAuth: true,
		}, func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-errc:
		e.T.Fatalf("discovery serve: %v", err)
	case <-time.After(30 * time.Second):
		e.T.Fatal("discovery service not ready")
	}
	cli := e.Client(e.TestPKI, url)
	defer cli.Close()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	token, err := discovery.NewToken(tctx, cli, size)
	if err != nil {
		e.T.Fatal(err)
	}
	e.Discovery = V3Discovery(url, token)
	return url, token
}

// SpawnDiscovery runs `bin discovery serve` on IP(0) (etcd's ports) until
// the test ends, creates a token for size founders with `bin discovery
// new`, and makes it the nodes' discovery. It returns the service's URL and
// the token.
func (e *Env) SpawnDiscovery(bin string, size int) (url, token string) {
	e.T.Helper()
	url = e.ClientURL(0)
	e.Spawn(bin, "discovery", nil, nil, "discovery", "serve", "--listen", url, "--listen-peer", e.PeerURL(0),
		"--data-dir", filepath.Join(e.Dir, "discovery-data"), "--cert-dir", e.TestPKI)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(bin, "discovery", "new", "--size", fmt.Sprint(size), "--endpoints", url, "--cert-dir", e.TestPKI).Output()
		if err == nil {
			token = strings.TrimSpace(string(out))
			break
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("discovery new: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.Discovery = V3Discovery(url, token)
	return url, token
}
