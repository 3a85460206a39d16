package agent

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// clientURLFor turns a member's peer URL into its client URL: members run
// with the same ports, so only the host carries over.
func (a *Agent) clientURLFor(peerURL string) (string, error) {
	u, err := url.Parse(peerURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("peer URL %q has no host", peerURL)
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(a.cfg.Etcd.ClientPort)), nil
}

// endpointBook is a discovery source that also keeps the formed cluster's
// client URLs (v3 discovery): founding members may be long gone when a
// replacement boots.
type endpointBook interface {
	ClusterEndpoints(ctx context.Context) ([]string, error)
	PublishClusterEndpoints(ctx context.Context, endpoints []string) error
}

// publishEndpoints records the cluster's client URLs in discovery after this
// node changed the membership (bootstrap, join, leave). Best effort: a
// failure only leaves an older list there.
func (a *Agent) publishEndpoints(ctx context.Context, eps []string) {
	book, ok := a.disc.(endpointBook)
	if !ok || len(eps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := book.PublishClusterEndpoints(ctx, sortedCopy(eps)); err != nil {
		a.log.Warn("publish cluster endpoints to discovery", "err", err)
	}
}

// candidateEndpoints are the client URLs where a formed cluster may answer:
// the discovered members', the ones published in discovery and the ones this
// node last knew, never its own.
func (a *Agent) candidateEndpoints(ctx context.Context, res discovery.Result) []string {
	self := a.specBase().ClientURL()
	var eps []string
	for _, m := range res.Members {
		for _, p := range strings.Split(m.PeerURL, ",") {
			if ep, err := a.clientURLFor(p); err == nil {
				eps = append(eps, ep)
			}
		}
	}
	eps = append(eps, readEndpoints(a.cfg.Node.DataDir)...)
	if book, ok := a.disc.(endpointBook); ok {
		published, err := book.ClusterEndpoints(ctx)
		if err != nil {
			a.log.Warn("read cluster endpoints from discovery", "err", err)
		}
		eps = append(eps, published...)
	}
	slices.Sort(eps)
	eps = slices.Compact(eps)
	return slices.DeleteFunc(eps, func(ep string) bool { return ep == self })
}

// newClusterClient connects to the cluster through eps with the agent's
// client certificate, as it is on disk at each connection.
func (a *Agent) newClusterClient(eps []string) (*clientv3.Client, error) {
	tlsCfg, err := pki.ReloadingClientTLS(a.cfg.PKI.Dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to cluster %v: %w", eps, err)
	}
	return cli, nil
}
