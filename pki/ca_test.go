package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInitCA(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      CAOptions
		wantCN    string
		wantAfter time.Time
	}{
		{"defaults", CAOptions{}, "etcd-agent CA", t0.AddDate(10, 0, 0)},
		{"custom", CAOptions{CommonName: "prod CA", Validity: 90 * day}, "prod CA", t0.Add(90 * day)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "new", "ca") // created by InitCA
			certPath, keyPath, err := InitCA(dir, tt.opts, t0)
			if err != nil {
				t.Fatal(err)
			}
			if certPath != filepath.Join(dir, CACertFile) || keyPath != filepath.Join(dir, CAKeyFile) {
				t.Errorf("paths = %s, %s", certPath, keyPath)
			}
			if m := mode(t, certPath); m != 0o644 {
				t.Errorf("ca.crt mode %#o, want 0644", m)
			}
			if m := mode(t, keyPath); m != 0o600 {
				t.Errorf("ca.key mode %#o, want 0600", m)
			}
			if m := mode(t, dir); m != 0o700 {
				t.Errorf("dir mode %#o, want 0700", m)
			}
			c := mustLoadCert(t, certPath)
			if c.Subject.CommonName != tt.wantCN || !c.IsCA || !c.BasicConstraintsValid || !c.NotAfter.Equal(tt.wantAfter) {
				t.Errorf("cert CN=%q IsCA=%v NotAfter=%v", c.Subject.CommonName, c.IsCA, c.NotAfter)
			}
			if !c.NotBefore.Equal(t0.Add(-5 * time.Minute)) {
				t.Errorf("NotBefore = %v, want now-5m", c.NotBefore)
			}
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
			}
			if c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Error("CA lacks certSign")
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if _, err := LoadCA(certPath, keyPath, t0); err != nil {
				t.Errorf("LoadCA of a fresh CA: %v", err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
				t.Errorf("temp files left behind: %v", left)
			}
		})
	}
}

func TestInitCARefusesOverwrite(t *testing.T) {
	t.Parallel()
	for _, existing := range []string{CACertFile, CAKeyFile} {
		t.Run(existing, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, existing)
			if err := os.WriteFile(p, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := InitCA(dir, CAOptions{}, t0)
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want refusal naming %s", err, p)
			}
			if b, _ := os.ReadFile(p); string(b) != "precious" {
				t.Errorf("%s was modified", existing)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("dir has %d entries, want only the existing file", len(entries))
			}
		})
	}
	if _, _, err := InitCA(t.TempDir(), CAOptions{Validity: -time.Hour}, t0); err == nil {
		t.Error("negative validity accepted")
	}
}

// writeSelfSigned writes a self-signed ECDSA cert and PKCS#8 key.
func writeSelfSigned(t *testing.T, dir string, isCA bool) (certPath, keyPath string) {
	t.Helper()
	key, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leaf"},
		NotBefore:             t0.Add(-time.Hour),
		NotAfter:              t0.Add(day),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "x.crt"), filepath.Join(dir, "x.key")
	if err := os.WriteFile(certPath, encodeCertPEM(der), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func TestLoadCAErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup returns the paths to load and the time to load at; the
		// error must contain every string of want (with {key} replaced by
		// the key path).
		setup func(t *testing.T, certPath, keyPath string) (string, string, time.Time)
		want  []string
	}{
		{
			name:  "missing cert",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) { return c + ".nope", k, t0 },
			want:  []string{"no such file", "ca.crt.nope"},
		},
		{
			name:  "missing key",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) { return c, k + ".nope", t0 },
			want:  []string{"no such file", "ca.key.nope"},
		},
		{
			name: "cert not PEM",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) {
				writeFile(t, c, []byte("garbage\n"), 0o644)
				return c, k, t0
			},
			want: []string{"no PEM CERTIFICATE block", "ca.crt"},
		},
		{
			name: "cert corrupt DER",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) {
				writeFile(t, c, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
				return c, k, t0
			},
			want: []string{"corrupt certificate DER", "ca.crt"},
		},
		{
			name: "key corrupt",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) {
				writeFile(t, k, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
				return c, k, t0
			},
			want: []string{"corrupt PRIVATE KEY DER", "ca.key"},
		},
		{
			name: "mismatched key",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) {
				_, otherKey := writeSelfSigned(t, t.TempDir(), true)
				return c, otherKey, t0
			},
			want: []string{"does not match the certificate"},
		},
		{
			name:  "expired CA",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) { return c, k, t0.Add(11 * 365 * day) },
			want:  []string{"expired at"},
		},
		{
			name:  "CA not yet valid",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) { return c, k, t0.Add(-time.Hour) },
			want:  []string{"not valid until", "check the clock"},
		},
		{
			name: "not a CA",
			setup: func(t *testing.T, _, _ string) (string, string, time.Time) {
				c, k := writeSelfSigned(t, t.TempDir(), false)
				return c, k, t0
			},
			want: []string{"is not a CA"},
		},
		{
			name: "key 0640",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) {
				chmod(t, k, 0o640)
				return c, k, t0
			},
			want: []string{"chmod 600 {key}", "0640"},
		},
		{
			name: "key 0604",
			setup: func(t *testing.T, c, k string) (string, string, time.Time) {
				chmod(t, k, 0o604)
				return c, k, t0
			},
			want: []string{"chmod 600 {key}", "0604"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			certPath, keyPath, err := InitCA(t.TempDir(), CAOptions{}, t0)
			if err != nil {
				t.Fatal(err)
			}
			c, k, now := tt.setup(t, certPath, keyPath)
			ca, err := LoadCA(c, k, now)
			if err == nil {
				t.Fatalf("LoadCA succeeded (%v), want error", ca.Cert.Subject)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "{key}", k)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadCABundleAndKeyFormats(t *testing.T) {
	t.Parallel()
	// A rotation bundle: old CA first, new CA (whose key we hold) second,
	// key in SEC1 "EC PRIVATE KEY" form as openssl writes it.
	dirOld, dirNew := t.TempDir(), t.TempDir()
	oldCert, _, err := InitCA(dirOld, CAOptions{CommonName: "old"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	newCert, newKey, err := InitCA(dirNew, CAOptions{CommonName: "new"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	oldPEM, _ := os.ReadFile(oldCert)
	newPEM, _ := os.ReadFile(newCert)
	bundle := filepath.Join(t.TempDir(), "bundle.crt")
	writeFile(t, bundle, append(oldPEM, newPEM...), 0o644)

	key, err := readKeyFile(newKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1Path := filepath.Join(t.TempDir(), "ca.key")
	writeFile(t, sec1Path, pemBlock("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}), 0o600)
	appendFile(t, sec1Path, pemBlock("EC PRIVATE KEY", sec1))

	ca, err := LoadCA(bundle, sec1Path, t0)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "new" {
		t.Errorf("signing cert = %q, want the one matching the key", ca.Cert.Subject.CommonName)
	}
	certs, err := parseCertsPEM(ca.CertPEM)
	if err != nil || len(certs) != 2 {
		t.Fatalf("CertPEM holds %d certs (%v), want the whole bundle", len(certs), err)
	}
}
