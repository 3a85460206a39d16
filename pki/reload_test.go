package pki

import (
	"crypto/tls"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// twoNodeDirs issues two nodes' certs from one CA at the real current time:
// the second dir's pairs stand in for a renewal of the first's.
func twoNodeDirs(t *testing.T) (a, b string) {
	t.Helper()
	now := time.Now()
	ca := newTestCA(t, now, 0)
	for _, d := range []*string{&a, &b} {
		req := testRequest(t.TempDir())
		req.NodeIP, req.Now = netip.MustParseAddr("127.0.0.1"), now
		if _, err := ca.EnsureNodeCerts(req); err != nil {
			t.Fatal(err)
		}
		*d = req.Dir
	}
	return a, b
}

// serveSerials accepts connections on a TLS listener of dir's server pair
// that requires client certificates, and sends each client certificate's
// serial (nil when the handshake failed).
func serveSerials(t *testing.T, dir string) (addr string, serials <-chan *big.Int) {
	t.Helper()
	cfg, err := ServerTLS(dir, ServerCertFile, ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan *big.Int, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				ch <- nil
				conn.Close()
				continue
			}
			_, _ = tc.Write([]byte("ok"))
			ch <- tc.ConnectionState().PeerCertificates[0].SerialNumber
			conn.Close()
		}
	}()
	return ln.Addr().String(), ch
}

func serialOf(t *testing.T, path string) *big.Int {
	t.Helper()
	return mustLoadCert(t, path).SerialNumber
}

// replaceFile copies src over dst the way EnsureNodeCerts writes: atomically.
func replaceFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestReloadingClientTLSPresentsRenewedCert: one config, connections before,
// during and after the pair is replaced on disk; the server sees the serial
// of the pair on disk at each handshake (the old one while the key is new
// but the certificate not yet), and unchanged files are not parsed again.
func TestReloadingClientTLSPresentsRenewedCert(t *testing.T) {
	t.Parallel()
	dir, renewed := twoNodeDirs(t)
	cfg, r, err := reloadingClientTLS(dir, ClientCertFile, ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr, serials := serveSerials(t, dir)
	oldSerial := serialOf(t, filepath.Join(dir, ClientCertFile))
	newSerial := serialOf(t, filepath.Join(renewed, ClientCertFile))

	connect := func(want *big.Int, what string) {
		t.Helper()
		if err := dial(addr, cfg); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := <-serials; got == nil || got.Cmp(want) != 0 {
			t.Fatalf("%s: server saw client serial %v, want %v", what, got, want)
		}
	}
	connect(oldSerial, "before renewal")
	connect(oldSerial, "again, files unchanged")

	// Key first, as EnsureNodeCerts writes: the pair on disk does not
	// match for a moment, and the last good pair is presented.
	replaceFile(t, filepath.Join(renewed, ClientKeyFile), filepath.Join(dir, ClientKeyFile), keyFileMode)
	connect(oldSerial, "between key and certificate write")
	replaceFile(t, filepath.Join(renewed, ClientCertFile), filepath.Join(dir, ClientCertFile), certFileMode)
	connect(newSerial, "after renewal")
	connect(newSerial, "again after renewal")

	r.mu.Lock()
	loads := r.loadCount
	r.mu.Unlock()
	// Initial load, the failed mid-renewal load, the renewed pair.
	if loads != 3 {
		t.Errorf("pair parsed %d times over 5 handshakes, want 3 (once per change)", loads)
	}
}

// TestReloadingClientTLSFollowsCABundle: a server of another CA is refused
// until ca.crt on disk trusts that CA too; then the same config accepts it.
// DNS server names are checked against the certificate.
func TestReloadingClientTLSFollowsCABundle(t *testing.T) {
	t.Parallel()
	dir := nodeDir(t)
	other := nodeDir(t) // another CA: a rotation's new CA
	cfg, err := ReloadingClientTLS(dir, ClientCertFile, ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	// The other CA's server must accept our client certificate, as a
	// member does during a rotation (its bundle holds both CAs).
	bundle := append(mustRead(t, filepath.Join(dir, CACertFile)), mustRead(t, filepath.Join(other, CACertFile))...)
	if err := writeFileAtomic(filepath.Join(other, CACertFile), bundle, certFileMode); err != nil {
		t.Fatal(err)
	}
	addr, serials := serveSerials(t, other)
	err = dial(addr, cfg)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("server of an untrusted CA: err = %v, want a certificate error", err)
	}
	<-serials
	if err := writeFileAtomic(filepath.Join(dir, CACertFile), bundle, certFileMode); err != nil {
		t.Fatal(err)
	}
	if err := dial(addr, cfg); err != nil {
		t.Fatalf("after the bundle trusts the other CA: %v", err)
	}
	<-serials

	for _, tc := range []struct {
		serverName string
		ok         bool
	}{{"localhost", true}, {"db.example.com", false}} {
		c := cfg.Clone()
		c.ServerName = tc.serverName
		err := dial(addr, c)
		if tc.ok != (err == nil) {
			t.Errorf("server name %q: err = %v, want ok=%v", tc.serverName, err, tc.ok)
		}
		<-serials
	}
}

// TestReloadingClientTLSBrokenFiles: files that stop loading keep the last
// good pair while it is valid, and fail once it has expired.
func TestReloadingClientTLSBrokenFiles(t *testing.T) {
	t.Parallel()
	dir := nodeDir(t)
	if _, err := ReloadingClientTLS(t.TempDir(), ClientCertFile, ClientKeyFile); err == nil || !strings.Contains(err.Error(), "read CA bundle") {
		t.Errorf("no ca.crt: err = %v", err)
	}
	if _, err := ReloadingClientTLS(dir, "nope.crt", "nope.key"); err == nil || !strings.Contains(err.Error(), "load key pair") {
		t.Errorf("missing pair: err = %v", err)
	}
	now := time.Now()
	r := &reloader{caPath: filepath.Join(dir, CACertFile), certPath: filepath.Join(dir, ClientCertFile),
		keyPath: filepath.Join(dir, ClientKeyFile), now: func() time.Time { return now }}
	good, err := r.pair()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.certPath, []byte("garbage"), certFileMode)
	writeFile(t, r.caPath, []byte("garbage"), certFileMode)
	if got, err := r.pair(); err != nil || got != good {
		t.Errorf("corrupt cert file: got %p, %v; want the last good pair", got, err)
	}
	if _, err := r.pool(); err != nil {
		t.Errorf("corrupt CA bundle: %v; want the last good pool", err)
	}
	now = good.Leaf.NotAfter.Add(time.Second)
	if _, err := r.pair(); err == nil {
		t.Error("corrupt cert file and the last good pair expired: no error")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
