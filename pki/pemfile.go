package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// LoadCertificate reads the first certificate of a PEM file, e.g. to show a
// node's certificate expiry.
func LoadCertificate(path string) (*x509.Certificate, error) {
	certs, err := readCertsFile(path)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// readCertsFile reads every CERTIFICATE block of a PEM file. Any other block
// type, or none at all, is an error: a cert file must hold certificates only.
func readCertsFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", path, err)
	}
	return certs, nil
}

func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("corrupt certificate DER: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found (corrupt or empty file)")
	}
	return certs, nil
}

// readKeyFile reads a PEM private key (PKCS#8, SEC1 EC or PKCS#1 RSA).
func readKeyFile(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	key, err := parseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse private key %s: %w", path, err)
	}
	return key, nil
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block found (corrupt or empty file)")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "EC PARAMETERS": // `openssl ecparam -genkey` writes this first
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported; decrypt it first")
		default:
			return nil, fmt.Errorf("unexpected PEM block %q, want a private key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("corrupt %s DER: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
	}
}

func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// publicKeyMatches reports whether key is the private half of pub.
func publicKeyMatches(pub any, key crypto.Signer) bool {
	k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}

// CAName names a CA certificate in status and rotation records: its common
// name and a short sha256 of the certificate (two CAs may share a name).
func CAName(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return c.Subject.CommonName + " sha256:" + hex.EncodeToString(sum[:8])
}

// BundleCANames names every certificate of a PEM trust bundle (CAName), in
// order; what does not parse is left out.
func BundleCANames(pemBytes []byte) []string {
	certs, err := parseCertsPEM(pemBytes)
	if err != nil {
		return nil
	}
	names := make([]string, len(certs))
	for i, c := range certs {
		names[i] = CAName(c)
	}
	return names
}

// SignerIn names (CAName) the certificate of a PEM trust bundle that signed
// c; ok is false when none did.
func SignerIn(c *x509.Certificate, bundlePEM []byte) (name string, ok bool) {
	certs, err := parseCertsPEM(bundlePEM)
	if err != nil {
		return "", false
	}
	for _, ca := range certs {
		if c.CheckSignatureFrom(ca) == nil {
			return CAName(ca), true
		}
	}
	return "", false
}
