package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/pki"
)

// Dial returns a client to eps with the agent's client certificate from
// pkiDir, read from disk at each connection (a renewal reaches long-lived
// clients).
func Dial(pkiDir string, eps []string) (*clientv3.Client, error) {
	tlsCfg, err := pki.ReloadingClientTLS(pkiDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to cluster %v: %w", eps, err)
	}
	return cli, nil
}

// Dialable reports whether something accepts TCP connections at the URL's
// host:port within DialTimeout.
func Dialable(ctx context.Context, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// ClientURLFor turns a member's peer URL into its client URL: members run
// with the same ports, so only the host carries over.
func ClientURLFor(peerURL string, clientPort int) (string, error) {
	u, err := url.Parse(peerURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("peer URL %q has no host", peerURL)
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(clientPort)), nil
}

// ShortErr keeps an error to one readable status line.
func ShortErr(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// ErrUnreachable: nothing accepts connections at the endpoint.
var ErrUnreachable = errors.New("connection refused or unreachable")

// StatusAt asks the member at the client URL ep for its Status, by its
// address: for when no member list can be had (no quorum). Status is served
// without a quorum, so an answer says a member runs there (of which cluster,
// at which raft index). Nothing listening fails within DialTimeout
// (ErrUnreachable); the Status call is bounded by timeout.
func StatusAt(ctx context.Context, dial func(eps []string) (*clientv3.Client, error), ep string, timeout time.Duration) (*clientv3.StatusResponse, error) {
	if !Dialable(ctx, ep) {
		return nil, ErrUnreachable
	}
	cli, err := dial([]string{ep})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return cli.Status(sctx, ep)
}
