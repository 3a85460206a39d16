package membership

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// Enter decides how the node's member starts: in place with its data
// (Restart), as a founder behind the formation fence (Bootstrap), or as a
// new member under the membership lock (Join). A join returns its client to
// the cluster (the node's Cluster client from then on); otherwise cli is
// nil. A RejoinNeeded means the data belongs to a cluster a recovery
// replaced.
func (j *Job) Enter(ctx context.Context) (d Decision, cli *clientv3.Client, err error) {
	hasData, err := datadir.HasMember(j.dataDir())
	if err != nil {
		return Decision{}, nil, err
	}
	switch {
	case hasData:
		// The WAL is there: the first-start marker proves nothing more.
		if err := datadir.RemoveFirstStart(j.dataDir()); err != nil {
			j.n.Logger().Warn("remove the first-start marker", "err", err)
		}
		// A recovery may have replaced this member's cluster while the
		// node was away: then its data must not start again. Best effort:
		// a registry that does not answer never blocks a restart.
		if r := j.n.SupersededBeforeRestart(ctx); r != nil {
			return Decision{}, nil, r
		}
		// Formed: a founder's "ready" is of no use any more, and must not
		// outlive the data (a founder that lost it rejoins).
		if err := sidefile.RemoveFounderReady(j.dataDir()); err != nil {
			j.n.Logger().Warn("forget the founder's ready record", "err", err)
		}
		d, err = Decide(Facts{HasData: true, Self: j.self()})
	default:
		var res discovery.Result
		if res, err = j.discover(ctx); err != nil {
			return Decision{}, nil, err
		}
		if res.Self {
			d, cli, err = j.enterAsFounder(ctx, res)
		} else {
			d, cli, err = j.joinCluster(ctx, res, false)
		}
	}
	if err != nil {
		return Decision{}, nil, err
	}
	j.n.Recorder().AddDecision(report.Action(d.Path), d.Reason)
	j.n.Logger().Info("membership decision", "path", d.Path, "reason", d.Reason)
	return d, cli, nil
}

// discover registers this node in discovery and waits until the founding
// members are known.
func (j *Job) discover(ctx context.Context) (discovery.Result, error) {
	src, err := j.n.Discovery()
	if err != nil {
		return discovery.Result{}, err
	}
	j.n.SetStatus(report.PhaseDiscovery, "registering in discovery")
	self := j.self()
	return src.Bootstrap(ctx, discovery.Member{Name: self.Name, PeerURL: self.PeerURL}, func(p discovery.Progress) {
		msg := fmt.Sprintf("waiting for %d more members in discovery (%d/%d registered)", p.Waiting(), p.Registered, p.Size)
		if p.Problem != "" {
			msg = p.Problem
		}
		j.n.SetStatus(report.PhaseDiscovery, msg)
	})
}

// formationBook is the discovery source's formation records (v3, v2), nil
// for static discovery.
func (j *Job) formationBook() discovery.FormationBook {
	src, err := j.n.Discovery()
	if err != nil {
		return nil
	}
	book, _ := src.(discovery.FormationBook)
	return book
}

// enterAsFounder is the path of a founding member without data: the fence
// decides between bootstrap and join, and waits while it cannot tell. It
// never bootstraps on silence.
func (j *Job) enterAsFounder(ctx context.Context, res discovery.Result) (Decision, *clientv3.Client, error) {
	v, err := j.founderVerdict(ctx, res)
	if err != nil {
		return Decision{}, nil, err
	}
	if v.Kind == FenceJoin {
		j.n.Recorder().AddDecision(report.ActionFence, v.Reason)
		return j.joinCluster(ctx, res, true)
	}
	d, err := Decide(Facts{Self: j.self(), Discovered: discovered(res), Token: res.Token})
	d.Reason += " (" + v.Reason + ")"
	return d, nil, err
}

// founderVerdict runs the formation fence until it says bootstrap or join,
// answering other founders on the peer port meanwhile (static discovery).
func (j *Job) founderVerdict(ctx context.Context, res discovery.Result) (FenceVerdict, error) {
	var answer atomic.Value // what this founder answers on its peer port
	answer.Store("blank")
	ready := j.recordedReady(res)
	if ready {
		answer.Store("ready")
		j.n.Logger().Info("formation fence: this founder was ready before its restart")
	}
	if j.formationBook() == nil {
		// Other founders ask this node's peer port until its etcd starts.
		stop, err := j.answerAsFounder(ctx, &answer)
		if err != nil {
			j.n.Logger().Warn("cannot answer other founders on the peer port", "err", err)
		} else {
			defer stop()
		}
	}
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Second}
	for {
		v, err := j.fence(ctx, res, ready)
		if err != nil {
			return FenceVerdict{}, err
		}
		j.n.Logger().Info("formation fence", "verdict", v.Kind, "reason", v.Reason)
		switch v.Kind {
		case FenceReady:
			// Recorded before it is said: another founder may bootstrap on
			// it, and this one must not forget it in a restart.
			if err := sidefile.WriteFounderReady(j.dataDir(), j.readyRecord(res)); err != nil {
				return FenceVerdict{}, fmt.Errorf("record this founder as ready: %w", err)
			}
			answer.Store("ready")
			ready = true
			j.n.SetStatus(report.PhaseDiscovery, v.Reason)
			continue
		case FenceBootstrap, FenceJoin:
			return v, nil
		}
		j.n.SetStatus(report.PhaseDiscovery, v.Reason)
		if err := cluster.Sleep(ctx, bo.Next()); err != nil {
			return FenceVerdict{}, err
		}
	}
}

// readyRecord is what FounderReady records for this formation.
func (j *Job) readyRecord(res discovery.Result) sidefile.FounderReady {
	r := sidefile.FounderReady{At: j.n.Now().UTC().Round(0), Token: res.Token}
	for _, m := range res.Members {
		r.Founders = append(r.Founders, m.String())
	}
	return r
}

// recordedReady reports whether this founder recorded itself ready for
// this formation (same token, same founders) before a restart.
func (j *Job) recordedReady(res discovery.Result) bool {
	r, ok := sidefile.ReadFounderReady(j.dataDir())
	want := j.readyRecord(res)
	return ok && r.Token == want.Token && slices.Equal(r.Founders, want.Founders)
}

func discovered(res discovery.Result) []Member {
	var out []Member
	for _, m := range res.Members {
		out = append(out, Member{Name: m.Name, PeerURL: m.PeerURL})
	}
	return out
}

// fence gathers what a founding member without data must know before it may
// bootstrap and returns the verdict: the formation records of a registry
// (read until discovery answers), or every other founder's answer (static).
func (j *Job) fence(ctx context.Context, res discovery.Result, ready bool) (FenceVerdict, error) {
	facts := FenceFacts{SelfReady: ready}
	if cli, _ := j.clusterFormed(ctx, j.candidateEndpoints(ctx, res)); cli != nil {
		_ = cli.Close()
		facts.ClusterAnswers = true
	}
	if book := j.formationBook(); book != nil {
		rf, err := j.registryFormation(ctx, book, res.Token)
		if err != nil {
			return FenceVerdict{}, err
		}
		facts.Registry = &rf
	} else {
		facts.Founders = j.probeFounders(ctx, res.Members)
		for _, f := range facts.Founders {
			j.n.Logger().Debug("founder answer", "founder", f.Name, "state", f.State, "detail", f.Detail)
		}
	}
	return Fence(facts), nil
}

// registryFormation reads the registry's formation records, retrying while
// discovery does not answer: without them nothing may be decided.
func (j *Job) registryFormation(ctx context.Context, book discovery.FormationBook, token string) (RegistryFormation, error) {
	self := j.self()
	selfID, err := book.MemberID(discovery.Member{Name: self.Name, PeerURL: self.PeerURL})
	if err != nil {
		return RegistryFormation{}, err
	}
	var f discovery.Formation
	err = j.retry(ctx, "reading formation records from discovery", func(ctx context.Context) error {
		f, err = book.Formation(ctx)
		return err
	})
	if err != nil {
		return RegistryFormation{}, err
	}
	rf := RegistryFormation{Formed: f.Formed != nil}
	if f.Formed != nil {
		rf.FormedDetail = f.Formed.String()
	}
	if s, ok := f.Started[selfID]; ok {
		rf.SelfStarted, rf.SelfStartedAt = true, s.At
		rf.SelfNeverRan, err = datadir.NeverRan(j.dataDir(), j.firstStart(token))
		if err != nil {
			return RegistryFormation{}, err
		}
	}
	return rf, nil
}
