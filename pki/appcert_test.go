package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueAppClient(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	ca := newTestCA(t, now, 3650*day)
	dir := filepath.Join(t.TempDir(), "out")
	got, err := ca.IssueAppClient(dir, "patroni", 90*day, now, false)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustLoadCert(t, got.CertPath)
	if cert.Subject.CommonName != "patroni" || !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || cert.IsCA {
		t.Errorf("certificate CN %q, usages %v, CA %v: want CN patroni, client auth only, not a CA", cert.Subject.CommonName, cert.ExtKeyUsage, cert.IsCA)
	}
	if len(cert.IPAddresses)+len(cert.DNSNames) != 0 {
		t.Errorf("an application's client certificate names hosts: %v %v", cert.IPAddresses, cert.DNSNames)
	}
	if !got.NotAfter.Equal(now.Add(90*day)) || !cert.NotAfter.Equal(got.NotAfter) {
		t.Errorf("expires %s (file %s), want %s", got.NotAfter, cert.NotAfter, now.Add(90*day))
	}
	pool := x509.NewCertPool()
	pool.AddCert(mustLoadCert(t, got.CAPath))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the certificate does not verify against the ca.crt written beside it: %v", err)
	}
	if m := mode(t, got.KeyPath); m != 0o600 {
		t.Errorf("key mode %o, want 600", m)
	}

	// Existing files are kept unless replaced.
	before, _ := os.ReadFile(got.KeyPath)
	if _, err := ca.IssueAppClient(dir, "patroni", 90*day, now, false); err == nil || !strings.Contains(err.Error(), "exists: pass --replace") {
		t.Errorf("second issue: %v, want a refusal naming --replace", err)
	}
	if after, _ := os.ReadFile(got.KeyPath); string(after) != string(before) {
		t.Error("a refused issue changed the key")
	}
	if _, err := ca.IssueAppClient(dir, "patroni", 90*day, now, true); err != nil {
		t.Fatalf("--replace: %v", err)
	}
	if after, _ := os.ReadFile(got.KeyPath); string(after) == string(before) {
		t.Error("--replace kept the old key")
	}

	// A validity past the CA's own is capped at it.
	long, err := ca.IssueAppClient(dir, "long", 20000*day, now, false)
	if err != nil || !long.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("validity beyond the CA: %v, %v; want capped at %s", long.NotAfter, err, ca.Cert.NotAfter)
	}

	for _, cn := range []string{"", "etcd-agent", "etcd-operator", "etcd-peer", "etcd-server-10.0.1.5", "../x", "a b", strings.Repeat("a", 65)} {
		if _, err := ca.IssueAppClient(dir, cn, day, now, false); err == nil {
			t.Errorf("common name %q accepted", cn)
		}
	}
	if _, err := ca.IssueAppClient(dir, "ok", 0, now, false); err == nil {
		t.Error("zero validity accepted")
	}
}

func TestCheckExpiries(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	ca := newTestCA(t, now, 3650*day)
	dir := t.TempDir()
	soon, err := ca.IssueAppClient(dir, "soon", 10*day, now, false)
	if err != nil {
		t.Fatal(err)
	}
	later, err := ca.IssueAppClient(dir, "later", 300*day, now, false)
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.crt")
	writeFile(t, broken, []byte("not a certificate"), 0o644)
	got, err := CheckExpiries([]string{soon.CertPath, later.CertPath, soon.CAPath, filepath.Join(dir, "missing.crt"), broken}, now, 30*day)
	if err == nil || !strings.Contains(err.Error(), "broken.crt") {
		t.Errorf("a file that does not parse: err %v, want it named", err)
	}
	due := map[string]bool{}
	for _, x := range got {
		due[x.CommonName] = x.Due
	}
	if len(got) != 3 || !due["soon"] || due["later"] || due["test CA"] {
		t.Errorf("expiries %+v: want soon due, later and the CA not, the missing file skipped", got)
	}
	if exp, _ := CheckExpiries([]string{soon.CertPath}, now.Add(11*day), 30*day); len(exp) != 1 || exp[0].Left >= 0 || !exp[0].Due {
		t.Errorf("an expired certificate: %+v, want negative left and due", exp)
	}
}
