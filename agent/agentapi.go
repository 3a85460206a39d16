package agent

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/agentapi"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
	"github.com/etcd-agent/etcd-agent/pki"
)

// serveAgentAPI answers the other agents (package agentapi) for the whole
// run, from the moment the node's address and peer certificate are known
// (the certificates stage) whatever etcd's state. A listen that fails is
// retried with capped backoff: the API never stops the agent.
func (a *Agent) serveAgentAPI(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-a.certified:
		case <-ctx.Done():
			return
		}
		addr := net.JoinHostPort(a.id.PrivateIP.String(), strconv.Itoa(a.cfg.Agent.APIPort))
		b := backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
		for ctx.Err() == nil {
			err := a.agentAPIServer().Serve(ctx, addr)
			if err == nil || ctx.Err() != nil {
				return
			}
			a.log.Warn("agent API unavailable: other agents cannot ask this node before a recovery", "address", addr, "err", err)
			select {
			case <-time.After(b.Next()):
			case <-ctx.Done():
			}
		}
	}()
	return func() { cancel(); <-done }
}

// agentAPIServer serves with the peer certificate and CA bundle as they are
// on disk at each handshake, so renewals and CA rotations need no restart.
func (a *Agent) agentAPIServer() agentapi.Server {
	dir := a.cfg.PKI.Dir
	perHandshake := &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		server, _, err := pki.PeerTLS(dir)
		return server, err
	}}
	return agentapi.Server{Name: a.id.Name, DataDir: a.cfg.Node.DataDir, TLS: perHandshake, Log: a.log}
}
