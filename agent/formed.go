package agent

import (
	"context"
	"net"
	"net/url"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// clusterFormed returns a client to the cluster when a formed one answers at
// eps (nil otherwise), and the endpoints that accepted a connection. It is quick when nothing is formed yet (the
// usual simultaneous bootstrap): endpoints that refuse connections are
// skipped, and a member that is up but has no leader is still waiting for its
// founding peers.
func (a *Agent) clusterFormed(ctx context.Context, eps []string) (cli *clientv3.Client, live []string) {
	for _, ep := range eps {
		if dialable(ctx, ep) {
			live = append(live, ep)
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	cli, err := a.newClusterClient(live)
	if err != nil {
		return nil, live
	}
	for _, ep := range live {
		// Status is served without quorum: a leader means a formed cluster.
		// A founding peer that listens but does not serve yet is waiting
		// like us; a formed member answers in milliseconds.
		sctx, cancel := context.WithTimeout(ctx, formedStatusTimeout)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil || st.Leader == 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, formedProbeTimeout)
		_, err = cli.MemberList(lctx)
		cancel()
		if err == nil {
			return cli, live
		}
	}
	_ = cli.Close()
	return nil, live
}

// dialable reports whether something accepts TCP connections at the URL's
// host:port: a quick way to tell a stopped member from a slow one.
func dialable(ctx context.Context, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: formedDialTimeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}
