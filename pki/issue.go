package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"
)

// clockSkew is how far NotBefore is backdated so that a peer whose clock is a
// little behind still accepts a freshly issued certificate.
const clockSkew = 5 * time.Minute

// newKey generates the ECDSA P-256 key used for every certificate.
func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	return k, nil
}

// newSerial returns a random, positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// signCert fills in the serial, signs tmpl for pub with the parent's key and
// returns the PEM certificate and the parsed result.
func signCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, *x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse signed certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return encodeCertPEM(der), cert, nil
}

// leafValidity returns the NotBefore/NotAfter of a leaf issued at now: backdated
// by clockSkew but not before the CA, and capped at the CA's NotAfter.
func (ca *CA) leafValidity(now time.Time, validity time.Duration) (notBefore, notAfter time.Time) {
	notBefore = now.Add(-clockSkew)
	if notBefore.Before(ca.Cert.NotBefore) {
		notBefore = ca.Cert.NotBefore
	}
	notAfter = now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	return notBefore, notAfter
}

// issue creates a fresh key and a certificate for it as described by spec.
func (ca *CA) issue(spec roleSpec, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, nil, err
	}
	notBefore, notAfter := ca.leafValidity(now, validity)
	tmpl := spec.template()
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	certPEM, cert, err = signCert(tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issue %s certificate: %w", spec.role, err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issue %s certificate: %w", spec.role, err)
	}
	return certPEM, keyPEM, cert, nil
}
