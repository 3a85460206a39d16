package recovery

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// A member whose cluster a recovery replaced must not start with that data:
// these checks find the recovery record (in the registry, or in a cluster
// answering at an address the node knows) that names this node's cluster as
// replaced; the caller then moves the data aside and joins the new cluster.

// Superseded says this node must rejoin: a recovery replaced the cluster its
// data belongs to. The agent moves the data aside and joins the new cluster
// as a new member.
type Superseded struct {
	Reason string
}

func (s *Superseded) Error() string { return "rejoin as a new member: " + s.Reason }

// checkTimeout bounds one superseded check (the registry's record, or the
// clusters at the known addresses).
const checkTimeout = 5 * time.Second

// SupersededByRegistry returns a Superseded when a recovery replaced the
// cluster this node's data belongs to, as the registry records it. answered
// is false when there is no registry or it did not answer: no answer proves
// nothing.
func (j *Job) SupersededByRegistry(ctx context.Context) (s *Superseded, answered bool) {
	s, answered, err := supersededByRegistry(ctx, j.n.Config().Node.DataDir, j.n.Discovery)
	if err != nil {
		j.n.Logger().Debug("read the recovery record", "err", err)
	}
	return s, answered
}

// supersededByRegistry is SupersededByRegistry for any node, the `recover`
// command's included.
func supersededByRegistry(ctx context.Context, dataDir string, disc func() (discovery.Source, error)) (s *Superseded, answered bool, err error) {
	id, err := datadir.ReadIdentity(dataDir)
	if err != nil {
		return nil, false, nil
	}
	src, err := disc()
	if err != nil {
		return nil, false, nil
	}
	book, ok := src.(discovery.RecoveryBook)
	if !ok {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	rec, _, err := book.Recovery(ctx)
	if err != nil {
		return nil, false, err
	}
	if why, ok := SupersededBy(rec, id.ClusterID); ok {
		return &Superseded{Reason: why}, true, nil
	}
	return nil, true, nil
}

// SupersededBeforeRestart is the check before a member restarts in place:
// the registry when it answers, else the clusters at the addresses this node
// knows.
func (j *Job) SupersededBeforeRestart(ctx context.Context) *Superseded {
	s, answered := j.SupersededByRegistry(ctx)
	if s != nil || answered {
		return s
	}
	return j.supersededByCluster(ctx)
}

// supersededByCluster returns a Superseded when another cluster answers at
// one of the endpoints this node knows (its last list, discovery's, the
// static founders') and records that it replaced this node's cluster: what
// tells an old member with static discovery, or with a registry that does
// not answer, that its cluster was recovered elsewhere. Status is served
// without a quorum, so a cluster that is merely down costs a refused dial or
// one status call.
func (j *Job) supersededByCluster(ctx context.Context) *Superseded {
	n := j.n
	id, err := datadir.ReadIdentity(n.Config().Node.DataDir)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	self := n.Member().ClientURL()
	found := make(chan *Superseded, 1)
	var wg sync.WaitGroup
	for _, ep := range endpoints(ctx, n, false) { // the registry was asked already
		if ep == self {
			continue
		}
		wg.Go(func() {
			p := probe(ctx, n, ep)
			if !p.Answered || p.ClusterID == id.ClusterID {
				return
			}
			cli, err := n.Dial([]string{ep})
			if err != nil {
				return
			}
			defer cli.Close()
			if s := SupersededByAnswer(ctx, cli, id.ClusterID); s != nil {
				select {
				case found <- s:
				default:
				}
			}
		})
	}
	wg.Wait()
	select {
	case s := <-found:
		return s
	default:
		return nil
	}
}

// SupersededByAnswer returns a Superseded when the cluster answering through
// cli (another cluster than dataClusterID) records that it replaced it.
func SupersededByAnswer(ctx context.Context, cli *clientv3.Client, dataClusterID uint64) *Superseded {
	resp, err := cli.Get(ctx, keys.Recovery)
	if err != nil || len(resp.Kvs) == 0 {
		return nil
	}
	var rec discovery.Recovery
	if json.Unmarshal(resp.Kvs[0].Value, &rec) != nil {
		return nil
	}
	if why, ok := SupersededBy(&rec, dataClusterID); ok {
		return &Superseded{Reason: why}
	}
	return nil
}

// ReplacedCheckInterval is how often a running member asks the registry
// whether a recovery replaced its cluster (Run).
const ReplacedCheckInterval = time.Minute

// replacedReportEvery is how often a split cluster is reported again.
const replacedReportEvery = time.Hour

// Run is one round of the replaced check: it reports a split cluster, this
// member running (its agent restarted it before the registry answered, say)
// although a recovery replaced its cluster. Nothing is moved while it serves
// — its clients may be writing — but the problem is logged and listed as a
// decision for the operator, with the way out.
func (j *Job) Run(ctx context.Context) error {
	s, _ := j.SupersededByRegistry(ctx)
	if s == nil {
		return nil
	}
	n := j.n
	j.mu.Lock()
	if !j.lastReplacedReport.IsZero() && n.Now().Sub(j.lastReplacedReport) < replacedReportEvery {
		j.mu.Unlock()
		return nil
	}
	j.lastReplacedReport = n.Now()
	j.mu.Unlock()
	why := s.Reason + ": this member still serves the replaced cluster, whose writes since the recovery are not in the new one. Point its clients at the new cluster, then restart etcd-agent on this node: it moves the data aside and joins the new cluster"
	n.Logger().Error("this member's cluster was replaced by a recovery", "reason", why)
	n.Recorder().AddDecision(report.ActionDivergence, why)
	n.Publish()
	return nil
}
