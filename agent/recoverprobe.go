package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// quorumReadAttempts and quorumReadPause: a healthy cluster in the middle
// of an election refuses a linearizable read for a moment; only reads that
// fail over several seconds count as "no quorum".
const (
	quorumReadAttempts = 3
	quorumReadTimeout  = 2 * time.Second
	quorumReadPause    = time.Second
)

// recoveryEndpoints are the client URLs where the cluster may answer: this
// node's, the ones it last knew, a static list's and, when registry is set,
// the ones published in discovery and the founders' recorded there.
func (a *Agent) recoveryEndpoints(ctx context.Context, registry bool) []string {
	eps := []string{a.specBase().ClientURL()}
	eps = append(eps, readEndpoints(a.cfg.Node.DataDir)...)
	src, err := a.discoverySource()
	if err == nil && registry {
		if book, ok := src.(endpointBook); ok {
			if published, err := book.ClusterEndpoints(ctx); err == nil {
				eps = append(eps, published...)
			}
		}
		if fb, ok := src.(discovery.FormationBook); ok {
			if f, err := fb.Formation(ctx); err == nil {
				for _, s := range f.Started {
					if ep, err := a.clientURLFor(s.PeerURL); err == nil {
						eps = append(eps, ep)
					}
				}
			}
		}
	}
	if err == nil {
		if st, ok := src.(*discovery.Static); ok {
			for _, m := range st.Members {
				if ep, err := a.clientURLFor(m.PeerURL); err == nil {
					eps = append(eps, ep)
				}
			}
		}
	}
	slices.Sort(eps)
	return slices.Compact(eps)
}

// quorumFacts probes every endpoint the cluster may answer at: a Status
// (served without quorum) says a member runs; a linearizable read says a
// quorum serves.
func (a *Agent) quorumFacts(ctx context.Context, dataClusterID uint64) recovery.QuorumFacts {
	f := recovery.QuorumFacts{DataClusterID: dataClusterID}
	eps := a.recoveryEndpoints(ctx, true)
	f.Probes = make([]recovery.Probe, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() { f.Probes[i] = a.probeEndpoint(ctx, ep) })
	}
	wg.Wait()
	self := a.specBase().ClientURL()
	var answered []string
	for _, p := range f.Probes {
		if !p.Answered {
			continue
		}
		answered = append(answered, p.Endpoint)
		if p.Endpoint == self && p.ClusterID == dataClusterID {
			f.LocalIndex = p.RaftIndex
		}
	}
	if len(answered) == 0 {
		return f // nothing runs that could serve a read
	}
	for attempt := range quorumReadAttempts {
		if attempt > 0 {
			if sleepCtx(ctx, quorumReadPause) != nil {
				return f
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ep := range answered {
			wg.Go(func() {
				cli, err := a.newClusterClient([]string{ep})
				if err != nil {
					return
				}
				defer cli.Close()
				rctx, cancel := context.WithTimeout(ctx, quorumReadTimeout)
				defer cancel()
				resp, err := cli.Get(rctx, "/_etcd-agent/quorum-probe")
				if err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if !f.ReadOK {
					f.ReadOK, f.ReadVia, f.ReadClusterID = true, ep, resp.Header.GetClusterId()
				}
			})
		}
		wg.Wait()
		if f.ReadOK {
			return f
		}
	}
	return f
}

// probeEndpoint asks one endpoint for its Status.
func (a *Agent) probeEndpoint(ctx context.Context, ep string) recovery.Probe {
	p := recovery.Probe{Endpoint: ep}
	if !dialable(ctx, ep) {
		p.Err = "connection refused or unreachable"
		return p
	}
	cli, err := a.newClusterClient([]string{ep})
	if err != nil {
		p.Err = err.Error()
		return p
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := cli.Status(sctx, ep)
	if err != nil {
		p.Err = health.ShortErr(err)
		return p
	}
	p.Answered = true
	p.ClusterID, p.MemberID, p.RaftIndex = st.Header.GetClusterId(), st.Header.GetMemberId(), st.RaftIndex
	return p
}

// describeProbes is one progress line about what answered.
func describeProbes(f recovery.QuorumFacts) string {
	var parts []string
	for _, p := range f.Probes {
		if p.Answered {
			parts = append(parts, fmt.Sprintf("%s: member %x of cluster %x, raft index %d, no linearizable read", p.Endpoint, p.MemberID, p.ClusterID, p.RaftIndex))
		} else {
			parts = append(parts, fmt.Sprintf("%s: %s", p.Endpoint, p.Err))
		}
	}
	return "no quorum answers (" + strings.Join(parts, "; ") + ")"
}

// snapshotSources is where --from-snapshot looks: the configured snapshot
// stores (backup.dir, backup.s3); a FILE or s3:// reference needs none.
func (a *Agent) snapshotSources(ctx context.Context) (backup.Sources, error) {
	src, err := backup.OpenSources(ctx, a.cfg)
	if err != nil {
		return backup.Sources{}, fmt.Errorf("open the snapshot stores: %w", err)
	}
	return src, nil
}
