package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ClientTLS loads dir/ca.crt and the named pair (ClientCertFile/ClientKeyFile
// or OperatorCertFile/OperatorKeyFile) into a TLS client config for clientv3.
// It needs no CA key, so the operator can run it. Absolute file names are
// used as they are.
func ClientTLS(dir, certFile, keyFile string) (*tls.Config, error) {
	pool, pair, err := loadTLSFiles(dir, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load client TLS: %w", err)
	}
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ServerTLS loads dir/ca.crt and the named pair (e.g. ServerCertFile and
// ServerKeyFile) into a TLS server config that requires and verifies client
// certificates from the same CA.
func ServerTLS(dir, certFile, keyFile string) (*tls.Config, error) {
	pool, pair, err := loadTLSFiles(dir, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load server TLS: %w", err)
	}
	return &tls.Config{
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func loadTLSFiles(dir, certFile, keyFile string) (*x509.CertPool, tls.Certificate, error) {
	caPath := filepath.Join(dir, CACertFile)
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, errors.New("parse CA bundle " + caPath + ": no valid PEM certificate")
	}
	certPath, keyPath := inDir(dir, certFile), inDir(dir, keyFile)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load key pair %s, %s: %w", certPath, keyPath, err)
	}
	return pool, pair, nil
}

func inDir(dir, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// PeerTLS returns the server and client TLS configs of a node's peer port
// for the agent's own use of it (a founder without data answering there,
// founders probing each other): the peer certificate on both sides, and only
// peer certificates accepted from the other side.
func PeerTLS(dir string) (server, client *tls.Config, err error) {
	pool, pair, err := loadTLSFiles(dir, PeerCertFile, PeerKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load peer TLS: %w", err)
	}
	server = &tls.Config{
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12,
		VerifyPeerCertificate: requirePeerCN,
	}
	client = &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12,
		VerifyPeerCertificate: requirePeerCN,
	}
	return server, client, nil
}

// requirePeerCN runs after chain verification and refuses a certificate
// that is not a peer certificate (client and operator certificates come from
// the same CA).
func requirePeerCN(_ [][]byte, chains [][]*x509.Certificate) error {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return errors.New("no verified certificate")
	}
	if cn := chains[0][0].Subject.CommonName; cn != PeerCommonName {
		return fmt.Errorf("certificate %q is not a peer certificate (want CN %s)", cn, PeerCommonName)
	}
	return nil
}
