package recovery

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// A member whose cluster a recovery replaced must not go on with that data
// once the cluster is gone: these checks find the recovery record (in the
// registry, or in a cluster answering at an address the node knows) that
// names this node's cluster as replaced, then ask whether that cluster still
// has a quorum (DecideAside); only when it has had none for longer than the
// grace does the caller move the data aside and join the new cluster.

// Superseded says this node must rejoin: a recovery replaced the cluster its
// data belongs to, and that cluster is gone. The agent moves the data aside
// and joins the new cluster as a new member.
type Superseded struct {
	Reason string
}

func (s *Superseded) Error() string { return "rejoin as a new member: " + s.Reason }

// checkTimeout bounds one look for the recovery record (the registry's, or
// the clusters' at the known addresses), and one round of quorum probes.
const checkTimeout = 5 * time.Second

// holdPoll is how often a member held before its restart looks again.
const holdPoll = 2 * time.Second

// registryRecord is the registry's recovery record (read within timeout)
// and this node's member.
// answered is false when there is no registry or it did not answer: no
// answer proves nothing.
func (j *Job) registryRecord(ctx context.Context, timeout time.Duration) (rec *discovery.Recovery, id datadir.Identity, answered bool) {
	rec, id, answered, err := readRegistryRecord(ctx, j.n.Config().Node.DataDir, j.n.Discovery, timeout)
	if err != nil {
		j.n.Logger().Debug("read the recovery record", "err", err)
	}
	return rec, id, answered
}

// readRegistryRecord is registryRecord for any node, the `recover`
// command's included.
func readRegistryRecord(ctx context.Context, dataDir string, disc func() (discovery.Source, error), timeout time.Duration) (rec *discovery.Recovery, id datadir.Identity, answered bool, err error) {
	id, err = datadir.ReadIdentity(dataDir)
	if err != nil {
		return nil, id, false, nil
	}
	src, err := disc()
	if err != nil {
		return nil, id, false, nil
	}
	book, ok := src.(discovery.RecoveryBook)
	if !ok {
		return nil, id, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rec, _, err = book.Recovery(ctx)
	if err != nil {
		return nil, id, false, err
	}
	return rec, id, true, nil
}

// SupersededByRegistry returns a Superseded when the registry records that a
// recovery replaced the cluster this node's data belongs to, whether or not
// that cluster still serves (the split report of Run). answered is false
// when there is no registry or it did not answer.
func (j *Job) SupersededByRegistry(ctx context.Context) (s *Superseded, answered bool) {
	rec, id, answered := j.registryRecord(ctx, checkTimeout)
	if why, ok := SupersededBy(rec, id.ClusterID); ok {
		return &Superseded{Reason: why}, true
	}
	return nil, answered
}

// supersededByRegistry is SupersededByRegistry for the `recover` command.
func supersededByRegistry(ctx context.Context, dataDir string, disc func() (discovery.Source, error)) (s *Superseded, answered bool, err error) {
	rec, id, answered, err := readRegistryRecord(ctx, dataDir, disc, checkTimeout)
	if why, ok := SupersededBy(rec, id.ClusterID); ok {
		return &Superseded{Reason: why}, true, nil
	}
	return nil, answered, err
}

// AsideByRegistry is the check of a running member that has not been
// healthy since unhealthySince: a Superseded when the registry (read within
// timeout) records that a recovery replaced its cluster and that cluster is
// gone (DecideAside).
// answered is false when there is no registry or it did not answer.
func (j *Job) AsideByRegistry(ctx context.Context, timeout time.Duration, unhealthySince time.Time) (s *Superseded, answered bool) {
	rec, id, answered := j.registryRecord(ctx, timeout)
	if !answered {
		return nil, false
	}
	return j.judge(ctx, rec, id, unhealthySince, false).superseded(), true
}

// AsideByAnswer is the same check when another cluster than the data's
// answers through cli at the addresses this node knew: its recovery record
// decides, if it names the data's cluster.
func (j *Job) AsideByAnswer(ctx context.Context, cli *clientv3.Client, dataClusterID uint64, unhealthySince time.Time) *Superseded {
	rec := recordByAnswer(ctx, cli)
	if rec == nil {
		return nil
	}
	id, err := datadir.ReadIdentity(j.n.Config().Node.DataDir)
	if err != nil || id.ClusterID != dataClusterID {
		return nil
	}
	return j.judge(ctx, rec, id, unhealthySince, false).superseded()
}

// SupersededBeforeRestart is the check before a member restarts in place:
// the registry when it answers, else the clusters at the addresses this node
// knows. When a recovery replaced the data's cluster, the member is held —
// neither started (with another old member it could make the old quorum
// serve again) nor moved — until DecideAside says: keep (the old cluster
// still serves, or would with this member) or move. A record seen once
// counts while the registry does not answer; none at all never blocks a
// restart.
func (j *Job) SupersededBeforeRestart(ctx context.Context) *Superseded {
	n := j.n
	since := n.Now()
	var rec *discovery.Recovery
	var id datadir.Identity
	for {
		r, rid, answered := j.registryRecord(ctx, checkTimeout)
		if !answered {
			r, rid = j.recordByCluster(ctx)
		}
		if r != nil || rec == nil {
			rec, id = r, rid
		}
		if _, ok := SupersededBy(rec, id.ClusterID); !ok {
			return nil
		}
		d := j.judge(ctx, rec, id, since, true)
		switch d.Verdict {
		case AsideKeep:
			return nil
		case AsideMove:
			return d.superseded()
		}
		n.SetStatus(report.PhaseStartingEtcd, "holding this member before its restart: "+d.Reason)
		if cluster.Sleep(ctx, holdPoll) != nil {
			return nil // the pass ends
		}
	}
}

// judge decides about rec (naming the data's cluster id.ClusterID, or not)
// on a fresh look at that cluster's quorum; runStart is when the current
// run of unhealthy observations (or the hold before a restart) began. It
// logs the decision.
func (j *Job) judge(ctx context.Context, rec *discovery.Recovery, id datadir.Identity, runStart time.Time, restart bool) AsideDecision {
	n := j.n
	f := AsideFacts{Record: rec, DataClusterID: id.ClusterID, Grace: n.Config().Cluster.DeadMemberGrace.D()}
	if _, ok := SupersededBy(rec, id.ClusterID); !ok {
		return DecideAside(f)
	}
	f.ReadVia, f.QuorumWithSelf = ownQuorum(ctx, n, id, restart)
	f.Now = n.Now()
	j.mu.Lock()
	switch q := &j.noQuorum; {
	case f.ReadVia != "" || f.QuorumWithSelf != "":
		*q = noQuorum{}
	case q.cluster != id.ClusterID || q.since.IsZero() || q.since.Before(runStart):
		// A new run: a healthy moment since the last one ended it.
		*q = noQuorum{cluster: id.ClusterID, since: f.Now}
	}
	f.NoQuorumSince = j.noQuorum.since
	j.mu.Unlock()
	d := DecideAside(f)
	j.mu.Lock()
	quiet := d.Verdict == j.lastAside.verdict && f.Now.Sub(j.lastAside.at) < asideLogEvery
	if !quiet {
		j.lastAside.verdict, j.lastAside.at = d.Verdict, f.Now
	}
	j.mu.Unlock()
	switch {
	case d.Verdict == AsideMove:
		n.Logger().Warn("this member's cluster was replaced by a recovery and has no quorum: moving its data aside", "reason", d.Reason)
	case !quiet:
		n.Logger().Warn("this member's cluster was replaced by a recovery; not moving its data aside", "verdict", d.Verdict, "reason", d.Reason)
	}
	return d
}

// asideLogEvery: the same verdict is logged again only this often (a hold
// before a restart looks every few seconds for up to the grace).
const asideLogEvery = time.Minute

// asideLog is the last verdict logged, and when.
type asideLog struct {
	verdict AsideVerdict
	at      time.Time
}

// noQuorum is when this agent began to see no quorum of a cluster a
// recovery replaced.
type noQuorum struct {
	cluster uint64
	since   time.Time
}

func (d AsideDecision) superseded() *Superseded {
	if d.Verdict != AsideMove {
		return nil
	}
	return &Superseded{Reason: d.Reason}
}

// ownQuorum asks every endpoint where the data's cluster may answer for a
// linearizable read; readVia is one that served it as a member of that
// cluster. Before a restart (this member not running), withSelf says whether
// the members of that cluster that run (Status is served without a quorum)
// would make a quorum with this one.
func ownQuorum(ctx context.Context, n Requester, id datadir.Identity, restart bool) (readVia, withSelf string) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	eps := endpoints(ctx, n, true)
	var mu sync.Mutex
	running := map[uint64]string{} // member ID → endpoint, of the data's cluster
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Go(func() {
			if !cluster.Dialable(ctx, ep) {
				return
			}
			cli, err := n.Dial([]string{ep})
			if err != nil {
				return
			}
			defer cli.Close()
			rctx, rcancel := context.WithTimeout(ctx, quorumReadTimeout)
			resp, err := cli.Get(rctx, keys.QuorumProbe)
			rcancel()
			if err == nil && resp.Header.GetClusterId() == id.ClusterID {
				mu.Lock()
				readVia = ep
				mu.Unlock()
				return
			}
			if !restart {
				return
			}
			sctx, scancel := context.WithTimeout(ctx, statusTimeout)
			st, err := cli.Status(sctx, ep)
			scancel()
			if err == nil && st.Header.GetClusterId() == id.ClusterID && st.Header.GetMemberId() != id.MemberID {
				mu.Lock()
				running[st.Header.GetMemberId()] = ep
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if readVia != "" || len(running) == 0 {
		return readVia, ""
	}
	return "", quorumWithSelf(ctx, n, id, running)
}

// quorumWithSelf says how many voters of the data's cluster run, this member
// included, when they are a quorum of its member list (as a running member
// knows it, without a quorum); "" when they are not.
func quorumWithSelf(ctx context.Context, n Requester, id datadir.Identity, running map[uint64]string) string {
	for _, ep := range running {
		cli, err := n.Dial([]string{ep})
		if err != nil {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, statusTimeout)
		list, err := cli.MemberList(lctx, clientv3.WithSerializable())
		cancel()
		cli.Close()
		if err != nil || list.Header.GetClusterId() != id.ClusterID {
			continue
		}
		voters, up := 0, 0
		for _, m := range list.Members {
			if m.IsLearner {
				continue
			}
			voters++
			if _, ok := running[m.ID]; ok || m.ID == id.MemberID {
				up++
			}
		}
		if voters > 0 && up > voters/2 {
			return fmt.Sprintf("%d of %d voters run, this one included", up, voters)
		}
		return ""
	}
	return ""
}

// recordByCluster is the recovery record of another cluster answering at
// one of the endpoints this node knows (its last list, discovery's, the
// static founders'), when it names this node's cluster as replaced: what
// tells an old member with static discovery, or with a registry that does
// not answer, that its cluster was recovered elsewhere. Status is served
// without a quorum, so a cluster that is merely down costs a refused dial or
// one status call.
func (j *Job) recordByCluster(ctx context.Context) (*discovery.Recovery, datadir.Identity) {
	n := j.n
	id, err := datadir.ReadIdentity(n.Config().Node.DataDir)
	if err != nil {
		return nil, id
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	self := n.Member().ClientURL()
	found := make(chan *discovery.Recovery, 1)
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
			if rec := recordByAnswer(ctx, cli); rec != nil {
				if _, ok := SupersededBy(rec, id.ClusterID); ok {
					select {
					case found <- rec:
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case rec := <-found:
		return rec, id
	default:
		return nil, id
	}
}

// recordByAnswer is the recovery record kept in the cluster answering
// through cli; nil when it holds none.
func recordByAnswer(ctx context.Context, cli *clientv3.Client) *discovery.Recovery {
	resp, err := cli.Get(ctx, keys.Recovery)
	if err != nil || len(resp.Kvs) == 0 {
		return nil
	}
	var rec discovery.Recovery
	if json.Unmarshal(resp.Kvs[0].Value, &rec) != nil {
		return nil
	}
	return &rec
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
	why := s.Reason + ": this member still serves the replaced cluster, whose writes since the recovery are not in the new one. Its data is moved aside only once that cluster has had no quorum for cluster.deadMemberGrace. To keep the new cluster: point the clients at it, then stop this cluster's members (etcd-agent and its etcd) on every node that serves it; each agent, started again, moves its data aside after the grace and joins the new cluster"
	n.Logger().Error("this member's cluster was replaced by a recovery", "reason", why)
	n.Recorder().AddDecision(report.ActionDivergence, why)
	n.Publish()
	return nil
}
