package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// The agent is the node its jobs run on: these implement package node's
// interfaces, and nothing else of the agent is visible to a job.
var (
	_ node.Node    = (*Agent)(nil)
	_ node.Clients = (*Agent)(nil)
	_ node.Etcd    = (*Agent)(nil)
)

// Config implements node.Node.
func (a *Agent) Config() *config.Config { return a.cfg }

// Identity implements node.Node.
func (a *Agent) Identity() identity.Identity { return a.id }

// Logger implements node.Node.
func (a *Agent) Logger() *slog.Logger { return a.log }

// Now implements node.Node.
func (a *Agent) Now() time.Time { return a.now() }

// Recorder implements node.Node.
func (a *Agent) Recorder() *report.Recorder { return a.rec }

// Publish implements node.Node.
func (a *Agent) Publish() { a.flush() }

// SetStatus implements node.Node.
func (a *Agent) SetStatus(p report.Phase, msg string) { a.setPhase(p, msg) }

// Local implements node.Clients.
func (a *Agent) Local() *clientv3.Client { return a.client }

// Cluster implements node.Clients.
func (a *Agent) Cluster() (*clientv3.Client, error) { return a.clusterClient() }

// clusterClient is a client to the other members, for what a learner
// cannot serve (member list, promotion): the join's, or one made from the
// endpoints last recorded. Jobs share it.
func (a *Agent) clusterClient() (*clientv3.Client, error) {
	a.clusterMu.Lock()
	defer a.clusterMu.Unlock()
	if a.cluster != nil {
		return a.cluster, nil
	}
	self := a.etcdSpec().ClientURL()
	eps := slices.DeleteFunc(sidefile.ReadEndpoints(a.cfg.Node.DataDir), func(ep string) bool { return ep == self })
	if len(eps) == 0 {
		return nil, errors.New("no other member's client URL known to reach the cluster")
	}
	cli, err := a.Dial(eps)
	if err != nil {
		return nil, err
	}
	a.cluster = cli
	return cli, nil
}

// Dial implements node.Clients.
func (a *Agent) Dial(eps []string) (*clientv3.Client, error) { return cluster.Dial(a.cfg.PKI.Dir, eps) }

// Spec implements node.Etcd.
func (a *Agent) Spec() etcdconf.Spec { return a.etcdSpec() }

// Probe implements node.Etcd.
func (a *Agent) Probe(ctx context.Context) health.Health { return a.probe(ctx) }

// Restart implements node.Etcd.
func (a *Agent) Restart(ctx context.Context, spec etcdconf.Spec) (end func(), err error) {
	// One planned restart at a time: the CA restart and a rolling change
	// run as separate jobs (each under the membership lock, except a quota
	// raise under NOSPACE, which cannot take it).
	a.restartMu.Lock()
	a.setPlannedRestart(true)
	end = sync.OnceFunc(func() {
		a.setPlannedRestart(false)
		a.restartMu.Unlock()
	})
	a.plannedExit.Store("")
	a.setEtcdSpec(spec)
	if err := a.restartEtcd(ctx); err != nil {
		return end, err
	}
	a.writeAppliedSpec(spec)
	return end, nil
}

// PlannedExit implements node.Etcd.
func (a *Agent) PlannedExit() string {
	exit, _ := a.plannedExit.Load().(string)
	return exit
}
