package agent

import (
	"context"
	"time"
)

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
