package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// verdict is the outcome of inspecting an existing leaf pair.
type verdict struct {
	reuse   bool
	existed bool              // at least one of the two files was there
	reason  string            // why not reused, or a repair note when reused
	cert    *x509.Certificate // set when reuse
}

func reissue(reason string) verdict { return verdict{existed: true, reason: reason} }

// inspect decides whether the pair at certPath/keyPath can stay. The checks
// run from "is it even usable" to "is it what we want now", so the reason
// names the most basic problem.
func (ca *CA) inspect(spec roleSpec, certPath, keyPath string, req NodeRequest) verdict {
	_, certErr := os.Stat(certPath)
	keyInfo, keyErr := os.Stat(keyPath)
	certMissing, keyMissing := errors.Is(certErr, fs.ErrNotExist), errors.Is(keyErr, fs.ErrNotExist)
	switch {
	case certMissing && keyMissing:
		return verdict{}
	case certMissing:
		return reissue("cert file missing")
	case keyMissing:
		return reissue("key file missing")
	}

	key, err := readKeyFile(keyPath)
	if err != nil {
		return reissue(fmt.Sprintf("key corrupt: %v", err))
	}
	certs, err := readCertsFile(certPath)
	if err != nil {
		return reissue(fmt.Sprintf("corrupt: %v", err))
	}
	cert := certs[0]
	if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		return reissue("key is not ECDSA P-256")
	}
	if !publicKeyMatches(cert.PublicKey, key) {
		return reissue("key does not match cert")
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return reissue("issued by another CA")
	}
	if req.Now.After(cert.NotAfter) {
		return reissue("expired at " + cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if req.Now.Before(cert.NotBefore) {
		return reissue("not valid until " + cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if reason := ca.verifyUsages(cert, spec, req.Now); reason != "" {
		return reissue(reason)
	}
	if reason := spec.checkSANs(cert); reason != "" {
		return reissue(reason)
	}
	if cert.Subject.CommonName != spec.cn {
		return reissue(fmt.Sprintf("subject changed: CN %q, want %q", cert.Subject.CommonName, spec.cn))
	}
	if reason := ca.renewalDue(cert, req); reason != "" {
		return reissue(reason)
	}

	v := verdict{reuse: true, existed: true, cert: cert}
	if perm := keyInfo.Mode().Perm(); perm != keyFileMode {
		if err := os.Chmod(keyPath, keyFileMode); err != nil {
			return reissue(fmt.Sprintf("key mode %#o too open and chmod failed: %v", perm, err))
		}
		v.reason = fmt.Sprintf("key mode %#o tightened to %#o", perm, keyFileMode)
	}
	return v
}

// verifyUsages chains cert to this CA for each required usage (VerifyOptions
// treats KeyUsages as "any of", so each is checked on its own) and requires
// the extended key usages to be exactly the spec's.
func (ca *CA) verifyUsages(cert *x509.Certificate, spec roleSpec, now time.Time) string {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, u := range spec.usages {
		opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{u}}
		if _, err := cert.Verify(opts); err != nil {
			return fmt.Sprintf("does not verify against the CA: %v", err)
		}
	}
	have := slices.Clone(cert.ExtKeyUsage)
	want := slices.Clone(spec.usages)
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) || len(cert.UnknownExtKeyUsage) > 0 {
		return fmt.Sprintf("extended key usage changed: have %v, want %v", have, want)
	}
	return ""
}

// renewalDue reports why cert should be renewed now, or "". Renewal only
// happens if a new certificate would actually last longer: when the CA itself
// expires within RenewBefore, leaves are capped at the CA's NotAfter and
// reissuing on every run would only churn keys.
func (ca *CA) renewalDue(cert *x509.Certificate, req NodeRequest) string {
	left := cert.NotAfter.Sub(req.Now)
	if left >= req.RenewBefore {
		return ""
	}
	if _, newNotAfter := ca.leafValidity(req.Now, req.Validity); !newNotAfter.After(cert.NotAfter) {
		return ""
	}
	return fmt.Sprintf("expires in %s < renew-before %s", fmtDuration(left), fmtDuration(req.RenewBefore))
}
