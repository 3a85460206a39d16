package recovery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// Requester is what `etcd-agent recover` needs of its node, beside the
// running agent: enough to refuse at once and to probe the quorum. It has no
// way to publish: the status file is the running agent's.
type Requester interface {
	// Config is the node's configuration (read only).
	Config() *config.Config
	// Identity is the node's identity (name, addresses).
	Identity() identity.Identity
	// Now is the clock.
	Now() time.Time
	// Dial connects to eps with the agent's client certificate.
	Dial(eps []string) (*clientv3.Client, error)
	// Member is this node's etcd member as configured, whatever the
	// membership: its addresses, TLS and limits.
	Member() etcdconf.Spec
	// Discovery is the configured discovery source.
	Discovery() (discovery.Source, error)
}

// quorumReadAttempts and quorumReadPause: a healthy cluster in the middle
// of an election refuses a linearizable read for a moment; only reads that
// fail over several seconds count as "no quorum".
const (
	quorumReadAttempts = 3
	quorumReadTimeout  = 2 * time.Second
	quorumReadPause    = time.Second
)

// statusTimeout bounds one endpoint's Status answer.
const statusTimeout = 3 * time.Second

// endpointBook is a discovery source that keeps the formed cluster's client
// URLs (v3 discovery).
type endpointBook interface {
	ClusterEndpoints(ctx context.Context) ([]string, error)
}

// endpoints are the client URLs where the cluster may answer: this node's,
// the ones it last knew, a static list's and, when registry is set, the ones
// published in discovery and the founders' recorded there.
func endpoints(ctx context.Context, n Requester, registry bool) []string {
	port := n.Config().Etcd.ClientPort
	eps := []string{n.Member().ClientURL()}
	eps = append(eps, sidefile.ReadEndpoints(n.Config().Node.DataDir)...)
	src, err := n.Discovery()
	if err == nil && registry {
		if book, ok := src.(endpointBook); ok {
			if published, err := book.ClusterEndpoints(ctx); err == nil {
				eps = append(eps, published...)
			}
		}
		if rb, ok := src.(discovery.RecoveryBook); ok {
			// A finished recovery's cluster: a recovery must look for
			// it before it may replace it (barrier).
			rctx, cancel := context.WithTimeout(ctx, checkTimeout)
			if rec, _, err := rb.Recovery(rctx); err == nil && rec != nil {
				eps = append(eps, rec.Endpoints...)
			}
			cancel()
		}
		if fb, ok := src.(discovery.FormationBook); ok {
			if f, err := fb.Formation(ctx); err == nil {
				for _, s := range f.Started {
					if ep, err := cluster.ClientURLFor(s.PeerURL, port); err == nil {
						eps = append(eps, ep)
					}
				}
			}
		}
	}
	if err == nil {
		if st, ok := src.(*discovery.Static); ok {
			for _, m := range st.Members {
				if ep, err := cluster.ClientURLFor(m.PeerURL, port); err == nil {
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
func quorumFacts(ctx context.Context, n Requester, dataClusterID uint64) QuorumFacts {
	f := QuorumFacts{DataClusterID: dataClusterID}
	eps := endpoints(ctx, n, true)
	f.Probes = make([]Probe, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() { f.Probes[i] = probe(ctx, n, ep) })
	}
	wg.Wait()
	var answered []string
	for _, p := range f.Probes {
		if p.Answered {
			answered = append(answered, p.Endpoint)
		}
	}
	if len(answered) == 0 {
		return f // nothing runs that could serve a read
	}
	for attempt := range quorumReadAttempts {
		if attempt > 0 {
			if cluster.Sleep(ctx, quorumReadPause) != nil {
				return f
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ep := range answered {
			wg.Go(func() {
				cli, err := n.Dial([]string{ep})
				if err != nil {
					return
				}
				defer cli.Close()
				rctx, cancel := context.WithTimeout(ctx, quorumReadTimeout)
				defer cancel()
				resp, err := cli.Get(rctx, keys.QuorumProbe)
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

// probe asks one endpoint for its Status.
func probe(ctx context.Context, n Requester, ep string) Probe {
	p := Probe{Endpoint: ep}
	st, err := cluster.StatusAt(ctx, n.Dial, ep, statusTimeout)
	if err != nil {
		p.Err = health.ShortErr(err)
		return p
	}
	p.Answered = true
	p.ClusterID, p.MemberID, p.RaftIndex = st.Header.GetClusterId(), st.Header.GetMemberId(), st.RaftIndex
	return p
}

// describeProbes is one progress line about what answered.
func describeProbes(f QuorumFacts) string {
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
