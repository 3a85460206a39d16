package agent

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// A member whose cluster a recovery replaced must not start with that data:
// these checks find the recovery record (in the registry, or in a cluster
// answering at an address the node knows) that names this node's cluster as
// replaced; the caller then moves the data aside and joins the new cluster.

// supersededByRecovery returns a rejoin when a recovery replaced the cluster
// this node's data belongs to, as the registry records it. answered is false
// when there is no registry or it did not answer: no answer proves nothing.
func (a *Agent) supersededByRecovery(ctx context.Context, timeout time.Duration) (r *membership.RejoinNeeded, answered bool) {
	id, err := datadir.ReadIdentity(a.cfg.Node.DataDir)
	if err != nil {
		return nil, false
	}
	src, err := a.discoverySource()
	if err != nil {
		return nil, false
	}
	book, ok := src.(discovery.RecoveryBook)
	if !ok {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rec, _, err := book.Recovery(ctx)
	if err != nil {
		a.log.Debug("read the recovery record", "err", err)
		return nil, false
	}
	if why, ok := recovery.Superseded(rec, id.ClusterID); ok {
		return &membership.RejoinNeeded{Reason: why}, true
	}
	return nil, true
}

// supersededBeforeRestart is the check before a member restarts in place:
// the registry when it answers, else the clusters at the addresses this node
// knows.
func (a *Agent) supersededBeforeRestart(ctx context.Context) *membership.RejoinNeeded {
	r, answered := a.supersededByRecovery(ctx, supersededCheckTimeout)
	if r != nil || answered {
		return r
	}
	return a.supersededByCluster(ctx, supersededCheckTimeout)
}

// supersededByCluster returns a rejoin when another cluster answers at one
// of the endpoints this node knows (its last list, discovery's, the static
// founders') and records that it replaced this node's cluster: what tells an
// old member with static discovery, or with a registry that does not answer,
// that its cluster was recovered elsewhere. Status is served without a
// quorum, so a cluster that is merely down costs a refused dial or one
// status call.
func (a *Agent) supersededByCluster(ctx context.Context, timeout time.Duration) *membership.RejoinNeeded {
	id, err := datadir.ReadIdentity(a.cfg.Node.DataDir)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	self := a.specBase().ClientURL()
	found := make(chan *membership.RejoinNeeded, 1)
	var wg sync.WaitGroup
	for _, ep := range a.recoveryEndpoints(ctx, false) { // the registry was asked already
		if ep == self {
			continue
		}
		wg.Go(func() {
			p := a.probeEndpoint(ctx, ep)
			if !p.Answered || p.ClusterID == id.ClusterID {
				return
			}
			cli, err := a.newClusterClient([]string{ep})
			if err != nil {
				return
			}
			defer cli.Close()
			if r := a.supersededByAnswer(ctx, cli, id.ClusterID); r != nil {
				select {
				case found <- r:
				default:
				}
			}
		})
	}
	wg.Wait()
	select {
	case r := <-found:
		return r
	default:
		return nil
	}
}

// supersededByAnswer returns a rejoin when the cluster answering through cli
// (another cluster than dataClusterID) records that it replaced it.
func (a *Agent) supersededByAnswer(ctx context.Context, cli *clientv3.Client, dataClusterID uint64) *membership.RejoinNeeded {
	resp, err := cli.Get(ctx, recoveryKey)
	if err != nil || len(resp.Kvs) == 0 {
		return nil
	}
	var rec discovery.Recovery
	if json.Unmarshal(resp.Kvs[0].Value, &rec) != nil {
		return nil
	}
	if why, ok := recovery.Superseded(&rec, dataClusterID); ok {
		return &membership.RejoinNeeded{Reason: why}
	}
	return nil
}

// supersededCheckTimeout bounds reading the registry's recovery record.
const supersededCheckTimeout = 5 * time.Second

// replacedCheckInterval is how often a running member asks the registry
// whether a recovery replaced its cluster.
const replacedCheckInterval = time.Minute

// checkReplaced reports a split cluster: this member runs (its agent
// restarted it before the registry answered, say) although a recovery
// replaced its cluster. Nothing is moved while it serves — its clients may
// be writing — but the problem is logged and listed as a decision for the
// operator, with the way out.
func (a *Agent) checkReplaced(ctx context.Context) {
	r, _ := a.supersededByRecovery(ctx, supersededCheckTimeout)
	if r == nil {
		return
	}
	if !a.lastReplacedReport.IsZero() && a.now().Sub(a.lastReplacedReport) < time.Hour {
		return
	}
	a.lastReplacedReport = a.now()
	why := r.Reason + ": this member still serves the replaced cluster, whose writes since the recovery are not in the new one. Point its clients at the new cluster, then restart etcd-agent on this node: it moves the data aside and joins the new cluster"
	a.log.Error("this member's cluster was replaced by a recovery", "reason", why)
	a.rec.AddDecision(report.ActionDivergence, why)
	a.flush()
}
