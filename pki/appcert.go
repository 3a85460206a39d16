package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Application certificates: client certificates for the cluster's own
// clients (Patroni, the Kubernetes API server, a script), issued from the
// cluster CA by `etcd-agent cert issue` on a host that holds the CA key.
// They authenticate to etcd's client port only: etcd's peer port accepts
// the peer CN alone.

// AppCert is an issued application certificate.
type AppCert struct {
	CommonName string
	CertPath   string
	KeyPath    string
	CAPath     string // the CA certificate a client verifies the servers with
	NotAfter   time.Time
}

// appCommonName is what an application's CN may hold: it names the files
// too.
var appCommonName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// reservedCommonNames are the agent's own identities: an application
// certificate with one of them would be mistaken for the agent in etcd's
// logs (and, with etcd's auth enabled, would act as it).
var reservedCommonNames = []string{AgentCommonName, OperatorCommonName, PeerCommonName}

// CheckAppCommonName says why cn cannot name an application certificate.
func CheckAppCommonName(cn string) error {
	switch {
	case !appCommonName.MatchString(cn):
		return fmt.Errorf("%q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the files too)", cn)
	case slices.Contains(reservedCommonNames, cn) || strings.HasPrefix(cn, "etcd-server-"):
		return fmt.Errorf("%q is one of the agent's own identities: pick the application's name (e.g. patroni, kube-apiserver)", cn)
	}
	return nil
}

// IssueAppClient issues a client certificate with common name cn into dir
// as <cn>.crt and <cn>.key (0600), beside a copy of the CA certificate
// (ca.crt). Existing files are kept and the issue refused, unless replace.
func (ca *CA) IssueAppClient(dir, cn string, validity time.Duration, now time.Time, replace bool) (AppCert, error) {
	if err := CheckAppCommonName(cn); err != nil {
		return AppCert{}, fmt.Errorf("issue client certificate: common name %w", err)
	}
	if validity <= 0 {
		return AppCert{}, fmt.Errorf("issue client certificate for %s: validity %s: want a positive duration", cn, validity)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return AppCert{}, fmt.Errorf("issue client certificate for %s: %w", cn, err)
	}
	out := AppCert{CommonName: cn, CertPath: filepath.Join(dir, cn+".crt"), KeyPath: filepath.Join(dir, cn+".key"), CAPath: filepath.Join(dir, CACertFile)}
	if !replace {
		for _, p := range []string{out.CertPath, out.KeyPath} {
			if _, err := os.Stat(p); err == nil {
				return AppCert{}, fmt.Errorf("issue client certificate for %s: %s exists: pass --replace to issue a new one in its place, or choose another --out", cn, p)
			}
		}
	}
	spec := roleSpec{role: RoleClient, cn: cn, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	certPEM, keyPEM, cert, err := ca.issue(spec, now, validity)
	if err != nil {
		return AppCert{}, fmt.Errorf("issue client certificate for %s: %w", cn, err)
	}
	// The key first: a certificate without its key is useless, a key
	// without its certificate is only issued again.
	if err := writeFileAtomic(out.KeyPath, keyPEM, keyFileMode); err != nil {
		return AppCert{}, fmt.Errorf("write %s: %w", out.KeyPath, err)
	}
	if err := writeFileAtomic(out.CertPath, certPEM, certFileMode); err != nil {
		return AppCert{}, fmt.Errorf("write %s: %w", out.CertPath, err)
	}
	if err := writeFileAtomic(out.CAPath, ca.CertPEM, certFileMode); err != nil {
		return AppCert{}, fmt.Errorf("write %s: %w", out.CAPath, err)
	}
	out.NotAfter = cert.NotAfter
	return out, nil
}

// Expiry is one certificate file's expiry.
type Expiry struct {
	Path       string
	CommonName string
	Issuer     string
	IsCA       bool
	NotAfter   time.Time
	Left       time.Duration // negative: expired
	// Due: less than the renewal margin left (or expired).
	Due bool
}

// CheckExpiries reads every certificate in files (missing files are
// skipped) and says which have less than margin left at now. A file that
// exists but does not parse is an error.
func CheckExpiries(files []string, now time.Time, margin time.Duration) ([]Expiry, error) {
	var out []Expiry
	var errs []error
	for _, p := range files {
		certs, err := readCertsFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		for _, c := range certs {
			left := c.NotAfter.Sub(now)
			out = append(out, Expiry{Path: p, CommonName: c.Subject.CommonName, Issuer: c.Issuer.CommonName, IsCA: c.IsCA,
				NotAfter: c.NotAfter.UTC(), Left: left, Due: left < margin})
		}
	}
	return out, errors.Join(errs...)
}
