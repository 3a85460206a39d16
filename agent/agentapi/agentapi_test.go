package agentapi

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/pki"
)

// nodePKI issues a node's certificates for 127.0.0.1 from a new CA.
func nodePKI(t *testing.T, dir string) string {
	t.Helper()
	certPath, keyPath, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(certPath, keyPath, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certDir := filepath.Join(dir, "pki")
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: certDir, NodeIP: netip.MustParseAddr("127.0.0.1"),
		Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return certDir
}

// TestAskWAL serves a node without member data over real TLS: a peer
// certificate gets the answer, the agent's client certificate (same CA,
// not a peer) is refused, and a closed port is an error naming the address.
func TestAskWAL(t *testing.T) {
	dir := t.TempDir()
	certDir := nodePKI(t, dir)
	serverTLS, clientTLS, err := pki.PeerTLS(certDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	srv := Server{Name: "node-1", DataDir: filepath.Join(dir, "data"), TLS: serverTLS, Log: slog.New(slog.DiscardHandler)}
	go func() { served <- srv.Serve(ctx, addr) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "https://" + addr

	var ans WALAnswer
	for deadline := time.Now().Add(10 * time.Second); ; {
		ans, err = AskWAL(ctx, clientTLS, base)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if ans.Name != "node-1" || ans.HasMember {
		t.Fatalf("answer %+v, want node-1 without member data", ans)
	}

	agentTLS, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AskWAL(ctx, agentTLS, base); err == nil {
		t.Fatal("a client certificate that is not a peer certificate got an answer")
	}
	if _, err := AskWAL(ctx, &tls.Config{InsecureSkipVerify: true}, base); err == nil {
		t.Fatal("a client without a certificate got an answer")
	}

	if _, err := AskWAL(ctx, clientTLS, "https://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("closed port: err = %v, want the address named", err)
	}
	if err := (Server{TLS: serverTLS}).Serve(ctx, "256.0.0.1:1"); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("listen on a bad address: err = %v", err)
	}
}

func TestURLFor(t *testing.T) {
	got, err := URLFor("https://10.0.1.5:2380", 2383)
	if err != nil || got != "https://10.0.1.5:2383" {
		t.Fatalf("URLFor = %q, %v", got, err)
	}
	if _, err := URLFor("10.0.1.5", 2383); err == nil {
		t.Fatal("URLFor accepted a peer URL without a scheme")
	}
}
