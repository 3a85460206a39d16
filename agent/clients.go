package agent

import (
	"context"
	"errors"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
)

// newClusterClient connects to the cluster through eps with the agent's
// client certificate, as it is on disk at each connection.
func (a *Agent) newClusterClient(eps []string) (*clientv3.Client, error) {
	return cluster.Dial(a.cfg.PKI.Dir, eps)
}

// clusterClient is a client to the other members, for what a learner
// cannot serve (member list, promotion): the join's, or one to the
// endpoints this node last knew.
func (a *Agent) clusterClient() (*clientv3.Client, error) {
	if a.cluster != nil {
		return a.cluster, nil
	}
	self := a.spec.ClientURL()
	eps := slices.DeleteFunc(readEndpoints(a.cfg.Node.DataDir), func(ep string) bool { return ep == self })
	if len(eps) == 0 {
		return nil, errors.New("no other member's client URL known to reach the cluster")
	}
	cli, err := a.newClusterClient(eps)
	if err != nil {
		return nil, err
	}
	a.cluster = cli
	return cli, nil
}

// stopAndForgetEtcd stops the local etcd (a container is removed: the next
// member gets a new container spec anyway) and closes the clients to it,
// before its data dir is replaced (rejoin, recovery).
func (a *Agent) stopAndForgetEtcd(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, a.cfg.Podman.StopTimeout.D()+10*time.Second)
	defer cancel()
	if err := a.opts.Runtime.Remove(sctx); err != nil {
		return err
	}
	if a.client != nil {
		_ = a.client.Close()
		a.client = nil
	}
	if a.cluster != nil {
		_ = a.cluster.Close()
		a.cluster = nil
	}
	return nil
}
