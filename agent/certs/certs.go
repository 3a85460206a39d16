// Package certs keeps this node's certificates: issued from the cluster's CA
// at start (a stage of the lifecycle) and renewed in place before they expire
// (a job). A renewal needs no restart: etcd reads its certificate and key
// files at every handshake (TLSInfo's GetCertificate/GetClientCertificate in
// client/pkg/transport/listener.go), and the agent's own clients read theirs
// at each connection (pki.ReloadingClientTLS). etcd reads the CA bundle only
// at start: a changed bundle is the CA restart's job (package rollout).
package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Job issues and renews the node's certificates.
type Job struct {
	n node.Node
	// afterRenewal runs after each successful check (the CA restart looks
	// at the bundle etcd loaded).
	afterRenewal func(context.Context)

	mu sync.Mutex
	ca *pki.CA
}

// NewJob returns the certificate job of n; afterRenewal (may be nil) runs
// after each check that renewed what was due.
func NewJob(n node.Node, afterRenewal func(context.Context)) *Job {
	return &Job{n: n, afterRenewal: afterRenewal}
}

// CheckEvery is how often certificates are checked: a quarter of
// renewBefore, so a certificate is renewed with at least three quarters of
// renewBefore left, whatever the validity; hourly at most (the default 30d
// needs no more) and every few seconds at least.
func CheckEvery(renewBefore time.Duration) time.Duration {
	const most, least = time.Hour, 5 * time.Second
	return max(least, min(most, renewBefore/4))
}

// Ensure is the certificates stage: load the CA and issue what is missing or
// due. A CA that cannot be used is a configuration error (exit 78: no retry
// fixes it, and systemd does not restart in a loop).
func (j *Job) Ensure(context.Context) error {
	cfg := j.n.Config()
	ca, err := pki.LoadCA(cfg.PKI.CACert, cfg.PKI.CAKey, j.n.Now())
	if err != nil {
		fix := "ship the cluster's CA certificate and key (pki.caCert, pki.caKey) readable by the agent's user only"
		var perm *pki.KeyPermError
		if errors.As(err, &perm) {
			fix = perm.Fix()
		}
		return &config.Error{Problems: []config.Problem{{Field: "pki.caKey", Value: cfg.PKI.CAKey, Problem: err.Error(), Fix: fix}}}
	}
	j.mu.Lock()
	j.ca = ca
	j.mu.Unlock()
	return j.refresh()
}

// Run is one check: reload the CA (the operator may have pushed a new
// bundle or key; one that cannot be loaded now keeps the last), renew what is
// due, then run afterRenewal.
func (j *Job) Run(ctx context.Context) error {
	cfg, log, rec := j.n.Config(), j.n.Logger(), j.n.Recorder()
	if ca, err := pki.LoadCA(cfg.PKI.CACert, cfg.PKI.CAKey, j.n.Now()); err != nil {
		rec.SetError(fmt.Errorf("reload CA: %w", err))
		log.Error("reload CA failed: keeping the last one", "err", err)
	} else {
		j.mu.Lock()
		j.ca = ca
		j.mu.Unlock()
	}
	if err := j.refresh(); err != nil {
		rec.SetError(fmt.Errorf("certificate renewal: %w", err))
		log.Error("certificate renewal failed", "err", err)
		return nil
	}
	if j.afterRenewal != nil {
		j.afterRenewal(ctx)
	}
	return nil
}

// refresh reissues what is due and publishes the certificates' expiry.
func (j *Job) refresh() error {
	cfg, id := j.n.Config(), j.n.Identity()
	j.mu.Lock()
	ca := j.ca
	j.mu.Unlock()
	certs, err := ca.EnsureNodeCerts(pki.NodeRequest{
		Dir: cfg.PKI.Dir, NodeIP: id.PrivateIP, Hostname: id.Hostname,
		Validity: cfg.PKI.Validity.D(), RenewBefore: cfg.PKI.RenewBefore.D(), Now: j.n.Now(),
	})
	if err != nil {
		return err
	}
	// Every leaf is issued by the signer now (EnsureNodeCerts reissues
	// those another CA issued).
	issuer := Issuer(ca.Cert)
	var published []report.Cert
	for _, c := range certs.Certs {
		if c.Action != pki.ActionReused || c.Reason != "" {
			j.n.Logger().Info("certificate", "role", c.Role, "action", c.Action, "reason", c.Reason, "expires", c.NotAfter)
		}
		published = append(published, report.Cert{Role: c.Role, NotAfter: c.NotAfter, Issuer: issuer})
	}
	j.n.Recorder().Update(func(r *report.NodeReport) { r.Certs = published })
	return nil
}

// Issuer names a CA certificate in status: its common name and a short
// sha256 of the certificate (two CAs may share a name).
func Issuer(c *x509.Certificate) string { return pki.CAName(c) }
