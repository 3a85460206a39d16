package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// CAOptions describes a new CA. Zero values mean "etcd-agent CA" and 10 years.
type CAOptions struct {
	CommonName string
	Validity   time.Duration
}

const (
	defaultCACommonName = "etcd-agent CA"
	defaultCAYears      = 10
)

// CA is a loaded certificate authority that can sign node certificates.
type CA struct {
	// Cert is the CA certificate whose key is Key.
	Cert *x509.Certificate
	// Key signs leaf certificates.
	Key crypto.Signer
	// CertPEM is the trust bundle written to each node's ca.crt: every
	// certificate of the CA cert file, re-encoded (so a bundle of new and old
	// CA during a rotation keeps trusting both).
	CertPEM []byte
}

// InitCA creates dir/ca.crt (0644) and dir/ca.key (0600), creating dir (0700)
// if missing. It never overwrites: if either file exists it returns an error
// naming that file and leaves both untouched.
func InitCA(dir string, opts CAOptions, now time.Time) (certPath, keyPath string, err error) {
	if opts.CommonName == "" {
		opts.CommonName = defaultCACommonName
	}
	notAfter := now.AddDate(defaultCAYears, 0, 0)
	switch {
	case opts.Validity < 0:
		return "", "", fmt.Errorf("init CA: validity %v must be positive", opts.Validity)
	case opts.Validity > 0:
		notAfter = now.Add(opts.Validity)
	}
	certPath = filepath.Join(dir, CACertFile)
	keyPath = filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("init CA: %s already exists; refusing to overwrite it", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("init CA: stat %s: %w", p, err)
		}
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", "", fmt.Errorf("init CA: create dir: %w", err)
	}

	key, err := newKey()
	if err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only
	}
	certPEM, _, err := signCert(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	// Key first: a crash in between leaves a key without a cert, which the
	// next InitCA refuses by name instead of silently pairing a new cert.
	if err := createFileAtomic(keyPath, keyPEM, keyFileMode); err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	if err := createFileAtomic(certPath, certPEM, certFileMode); err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	return certPath, keyPath, nil
}

// LoadCA loads and checks a CA for signing at time now. It refuses a key file
// that group or others can access (the error says `chmod 600 <path>`), a
// missing or corrupt file, a key that matches no certificate in the cert
// file, a certificate that is not a CA, and a CA outside its validity.
func LoadCA(certPath, keyPath string, now time.Time) (*CA, error) {
	if err := checkKeyPerms(keyPath); err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	key, err := readKeyFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	certs, err := readCertsFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	var cert *x509.Certificate
	for _, c := range certs {
		if publicKeyMatches(c.PublicKey, key) {
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, fmt.Errorf("load CA: key %s does not match the certificate in %s", keyPath, certPath)
	}
	if err := checkIsCA(cert); err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", certPath, err)
	}
	if err := checkCAValidAt(cert, now); err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", certPath, err)
	}
	var bundle []byte
	for _, c := range certs {
		bundle = append(bundle, encodeCertPEM(c.Raw)...)
	}
	return &CA{Cert: cert, Key: key, CertPEM: bundle}, nil
}

// checkKeyPerms refuses a private key file with any group or other bits.
func checkKeyPerms(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat private key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return &KeyPermError{Path: path, Mode: perm}
	}
	return nil
}

// KeyPermError is a private key file that group or others can access. No
// retry fixes it: the agent exits with its configuration-error status.
type KeyPermError struct {
	Path string
	Mode os.FileMode
}

func (e *KeyPermError) Error() string {
	return fmt.Sprintf("private key %s has mode %#o, accessible by group or others; fix with: %s", e.Path, e.Mode, e.Fix())
}

// Fix is the command that repairs it.
func (e *KeyPermError) Fix() string { return "chmod 600 " + e.Path }

func checkIsCA(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("certificate %q is not a CA (basic constraints CA:FALSE or missing)", cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("CA certificate %q lacks the certSign key usage", cert.Subject.CommonName)
	}
	return nil
}

func checkCAValidAt(cert *x509.Certificate, now time.Time) error {
	if now.After(cert.NotAfter) {
		return fmt.Errorf("CA certificate %q expired at %s", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("CA certificate %q is not valid until %s (check the clock)", cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
