package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ReloadingClientTLS is ClientTLS for long-lived clients (the agent's own
// etcd clients): every handshake presents the pair currently on disk and
// verifies the server against dir/ca.crt as it is on disk then, so a renewed
// certificate or a rotated trust bundle is picked up by the next connection
// without a new config.
//
// Per handshake it costs a stat of each file; a file is read and parsed
// again only when its inode, size or modification time changed (pki replaces
// files by rename, so a rewrite is always a new inode). When the new files do
// not load — a renewal caught between its key and its certificate write —
// the last good pair is presented while it is still valid, and the files are
// tried again on the next handshake. A CA bundle that stops loading keeps the
// last good one.
//
// Server verification happens in VerifyConnection, so InsecureSkipVerify is
// set (it only turns off crypto/tls's check against a fixed RootCAs; setting
// RootCAs on the returned config has no effect). The chain and the server-auth
// usage are checked against the current bundle, and a DNS server name
// against the certificate. An IP server name (all of this cluster's
// endpoints) cannot be checked there: crypto/tls leaves IPs out of
// ConnectionState.ServerName. With this PKI that loses nothing: only nodes
// hold server-auth certificates, and every node holds the CA key.
//
// The files must load when this is called.
func ReloadingClientTLS(dir, certFile, keyFile string) (*tls.Config, error) {
	cfg, _, err := reloadingClientTLS(dir, certFile, keyFile)
	return cfg, err
}

func reloadingClientTLS(dir, certFile, keyFile string) (*tls.Config, *reloader, error) {
	r := &reloader{caPath: filepath.Join(dir, CACertFile), certPath: inDir(dir, certFile), keyPath: inDir(dir, keyFile), now: time.Now}
	if _, err := r.pool(); err != nil {
		return nil, nil, fmt.Errorf("load client TLS: %w", err)
	}
	if _, err := r.pair(); err != nil {
		return nil, nil, fmt.Errorf("load client TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: r.getClientCertificate,
		InsecureSkipVerify:   true, // verified by VerifyConnection against the current bundle
		VerifyConnection:     r.verifyServer,
	}, r, nil
}

// ReloadingKeyPair returns a tls.Config.GetClientCertificate that presents
// the pair at certPath/keyPath as it is on disk at each handshake (cached
// while unchanged, as in ReloadingClientTLS), for a config whose server
// verification is fixed (e.g. a discovery cluster with its own CA).
func ReloadingKeyPair(certPath, keyPath string) (func(*tls.CertificateRequestInfo) (*tls.Certificate, error), error) {
	r := &reloader{certPath: certPath, keyPath: keyPath, now: time.Now}
	if _, err := r.pair(); err != nil {
		return nil, err
	}
	return r.getClientCertificate, nil
}

// reloader caches the parsed files and the stat results they were read with.
type reloader struct {
	caPath, certPath, keyPath string
	now                       func() time.Time

	mu        sync.Mutex
	caStat    fileStamp
	caPool    *x509.CertPool
	certStat  fileStamp
	keyStat   fileStamp
	cert      *tls.Certificate
	loadCount int // how often a pair was parsed (tests check the cache)
}

// fileStamp is what decides whether a file changed since it was read.
type fileStamp struct{ fi fs.FileInfo }

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi}, nil
}

func (s fileStamp) same(o fileStamp) bool {
	return s.fi != nil && o.fi != nil && os.SameFile(s.fi, o.fi) &&
		s.fi.Size() == o.fi.Size() && s.fi.ModTime().Equal(o.fi.ModTime())
}

func (r *reloader) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.pair()
}

// pair returns the key pair on disk, or the cached one when the files did
// not change or do not load while the cached one is still valid.
func (r *reloader) pair() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certStat, certErr := stamp(r.certPath)
	keyStat, keyErr := stamp(r.keyPath)
	if r.cert != nil && certErr == nil && keyErr == nil && certStat.same(r.certStat) && keyStat.same(r.keyStat) {
		return r.cert, nil
	}
	err := errors.Join(certErr, keyErr)
	if err == nil {
		var pair tls.Certificate
		r.loadCount++
		if pair, err = tls.LoadX509KeyPair(r.certPath, r.keyPath); err == nil {
			r.cert, r.certStat, r.keyStat = &pair, certStat, keyStat
			return r.cert, nil
		}
	}
	if r.cert != nil && r.now().Before(r.cert.Leaf.NotAfter) {
		return r.cert, nil // e.g. mid-renewal: new key, old certificate
	}
	return nil, fmt.Errorf("load key pair %s, %s: %w", r.certPath, r.keyPath, err)
}

// pool returns the CA bundle on disk (cached while unchanged). A bundle that
// no longer loads keeps the last good one.
func (r *reloader) pool() (*x509.CertPool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := stamp(r.caPath)
	if err == nil && r.caPool != nil && st.same(r.caStat) {
		return r.caPool, nil
	}
	if err == nil {
		var pem []byte
		if pem, err = os.ReadFile(r.caPath); err == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				r.caPool, r.caStat = pool, st
				return pool, nil
			}
			err = errors.New("no valid PEM certificate")
		}
	}
	if r.caPool != nil {
		return r.caPool, nil
	}
	return nil, fmt.Errorf("read CA bundle %s: %w", r.caPath, err)
}

// verifyServer does what crypto/tls does with RootCAs and ServerName, with
// the bundle loaded now.
func (r *reloader) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server presented no certificate")
	}
	roots, err := r.pool()
	if err != nil {
		return err
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		DNSName:       cs.ServerName,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   r.now(),
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("verify server certificate: %w", err)
	}
	return nil
}
