package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// t0 is the fixed "now" of most tests.
var t0 = time.Date(2031, 3, 14, 9, 26, 53, 0, time.UTC)

const day = 24 * time.Hour

// newTestCA creates a CA in a fresh temp dir and loads it.
func newTestCA(t *testing.T, now time.Time, validity time.Duration) *CA {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath, err := InitCA(dir, CAOptions{CommonName: "test CA", Validity: validity}, now)
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	ca, err := LoadCA(certPath, keyPath, now)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	return ca
}

func testRequest(dir string) NodeRequest {
	return NodeRequest{
		Dir:         dir,
		NodeIP:      netip.MustParseAddr("10.0.1.5"),
		Hostname:    "ip-10-0-1-5.ec2.internal",
		Validity:    365 * day,
		RenewBefore: 30 * day,
		Now:         t0,
	}
}

// snapshot reads every regular file in dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func mustLoadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := LoadCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func byRole(t *testing.T, nc NodeCerts) map[string]CertResult {
	t.Helper()
	m := map[string]CertResult{}
	for _, r := range nc.Certs {
		m[r.Role] = r
	}
	if len(m) != 4 {
		t.Fatalf("want 4 roles, got %+v", nc.Certs)
	}
	return m
}

func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, perm) // WriteFile keeps the old mode of an existing file
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
