package pki

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeDir issues a node's certs at the real current time (crypto/tls checks
// validity against the wall clock) into a fresh dir.
func nodeDir(t *testing.T) string {
	t.Helper()
	now := time.Now()
	ca := newTestCA(t, now, 0)
	req := testRequest(t.TempDir())
	req.NodeIP, req.Now = netip.MustParseAddr("127.0.0.1"), now
	if _, err := ca.EnsureNodeCerts(req); err != nil {
		t.Fatal(err)
	}
	return req.Dir
}

// serve accepts one connection on a real TLS listener requiring client certs,
// and reports the handshake result and the client's CN.
func serve(t *testing.T, dir string) (addr string, result <-chan handshake) {
	t.Helper()
	cfg, err := ServerTLS(dir, ServerCertFile, ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("ServerTLS ClientAuth = %v", cfg.ClientAuth)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan handshake, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			ch <- handshake{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			ch <- handshake{err: err}
			return
		}
		cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		_, err = tc.Write([]byte("ok"))
		ch <- handshake{cn: cn, err: err}
	}()
	return ln.Addr().String(), ch
}

type handshake struct {
	cn  string
	err error
}

// dial connects, completes the handshake and reads the server's "ok"; in
// TLS 1.3 a rejected client cert only surfaces on that first read.
func dial(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != "ok" {
		return errors.New("unexpected reply " + string(buf))
	}
	return nil
}

func TestClientTLSHandshake(t *testing.T) {
	t.Parallel()
	dir := nodeDir(t)
	tests := []struct {
		name, certFile, keyFile, wantCN string
	}{
		{"agent", ClientCertFile, ClientKeyFile, AgentCommonName},
		{"operator", OperatorCertFile, OperatorKeyFile, OperatorCommonName},
		{"absolute paths", filepath.Join(dir, OperatorCertFile), filepath.Join(dir, OperatorKeyFile), OperatorCommonName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ClientTLS(dir, tt.certFile, tt.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			addr, result := serve(t, dir)
			if err := dial(addr, cfg); err != nil {
				t.Fatalf("client: %v", err)
			}
			r := <-result
			if r.err != nil || r.cn != tt.wantCN {
				t.Fatalf("server saw CN %q, err %v; want %q", r.cn, r.err, tt.wantCN)
			}
		})
	}
}

func TestClientTLSRejected(t *testing.T) {
	t.Parallel()
	dir, otherCluster := nodeDir(t), nodeDir(t)
	good, err := ClientTLS(dir, ClientCertFile, ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	noCert := good.Clone()
	noCert.Certificates = nil
	foreignCert, err := ClientTLS(otherCluster, ClientCertFile, ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	foreignCert.RootCAs = good.RootCAs // trusts our server, presents another CA's cert

	tests := []struct {
		name        string
		cfg         *tls.Config
		serverFails bool
	}{
		{"no client cert", noCert, true},
		{"client cert from another CA", foreignCert, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, result := serve(t, dir)
			if err := dial(addr, tt.cfg); err == nil {
				t.Fatal("client completed an exchange, want failure")
			}
			if r := <-result; r.err == nil {
				t.Fatalf("server accepted client CN %q", r.cn)
			}
		})
	}

	// The client side verifies the server too: our client against a server
	// of another cluster fails the handshake.
	t.Run("server from another CA", func(t *testing.T) {
		t.Parallel()
		addr, result := serve(t, otherCluster)
		err := dial(addr, good)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want certificate verification failure", err)
		}
		<-result
	})
}

func TestClientTLSLoadErrors(t *testing.T) {
	t.Parallel()
	dir := nodeDir(t)
	tests := []struct {
		name, dir, cert, key, want string
	}{
		{"no ca.crt", t.TempDir(), ClientCertFile, ClientKeyFile, "read CA bundle"},
		{"missing pair", dir, "nope.crt", "nope.key", "load key pair"},
		{"mismatched pair", dir, ClientCertFile, OperatorKeyFile, "load key pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ClientTLS(tt.dir, tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPeerTLSAcceptsPeerCertsOnly: the agent's own use of the peer port (a
// founder without data answering there) takes peer certificates and refuses
// the agent's and the operator's client certificates from the same CA.
func TestPeerTLSAcceptsPeerCertsOnly(t *testing.T) {
	dir := nodeDir(t)
	server, client, err := PeerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key string // "" = the peer pair from PeerTLS
		ok        bool
	}{
		{"peer certificate", "", "", true},
		{"agent client certificate", ClientCertFile, ClientKeyFile, false},
		{"operator certificate", OperatorCertFile, OperatorKeyFile, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				tcn := conn.(*tls.Conn)
				_ = tcn.SetDeadline(time.Now().Add(5 * time.Second))
				if tcn.Handshake() == nil {
					_, _ = tcn.Write([]byte("ok"))
				}
			}()
			cfg := client.Clone()
			cfg.ServerName = "127.0.0.1"
			if tc.cert != "" {
				other, err := ClientTLS(dir, tc.cert, tc.key)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Certificates = other.Certificates
			}
			err = dial(ln.Addr().String(), cfg)
			if tc.ok && err != nil {
				t.Fatalf("peer handshake failed: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("a non-peer certificate was accepted")
			}
		})
	}
}
