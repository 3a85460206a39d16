package recovery

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"

	"github.com/etcd-agent/etcd-agent/agent/agentapi"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/pki"
)

// walFacts reads this member's WAL and asks every other member of its
// cluster's agent for theirs. The members are the list this node recorded
// while the cluster was healthy; without one (never healthy here, or an
// older agent), every other node whose address it knows stands for one,
// named by its host.
func walFacts(ctx context.Context, n Requester, lost []string, force bool) (WALFacts, error) {
	cfg := n.Config()
	local, err := datadir.ReadTail(cfg.Node.DataDir)
	if err != nil {
		return WALFacts{}, fmt.Errorf("read this member's WAL: %w", err)
	}
	f := WALFacts{Self: n.Identity().Name, Local: local, Lost: lost, Force: force}
	_, clientTLS, tlsErr := pki.PeerTLS(cfg.PKI.Dir)
	others := otherMembers(ctx, n, local.ClusterID)
	f.Members = make([]MemberWAL, len(others))
	var wg sync.WaitGroup
	for i, m := range others {
		f.Members[i] = MemberWAL{Name: m.name}
		base, err := agentapi.URLFor(m.peerURL, cfg.Agent.APIPort)
		switch {
		case slices.Contains(lost, m.name):
			continue // declared gone: not asked (a frozen node would only cost the timeout)
		case err != nil:
			f.Members[i].Err = err.Error()
			continue
		case tlsErr != nil:
			f.Members[i].Address, f.Members[i].Err = base, tlsErr.Error()
			continue
		}
		f.Members[i].Address = base
		wg.Go(func() {
			ans, err := agentapi.AskWAL(ctx, clientTLS, base)
			if err != nil {
				f.Members[i].Err = err.Error()
				return
			}
			f.Members[i].Answered, f.Members[i].HasMember, f.Members[i].Tail = true, ans.HasMember, ans.Tail
		})
	}
	wg.Wait()
	return f, nil
}

type oldMember struct{ name, peerURL string }

// otherMembers are the members of cluster clusterID besides this node.
func otherMembers(ctx context.Context, n Requester, clusterID uint64) []oldMember {
	self := n.Identity()
	var out []oldMember
	if ms, ok := sidefile.ReadMembers(n.Config().Node.DataDir); ok && ms.ClusterID == fmt.Sprintf("%x", clusterID) {
		for _, m := range ms.Members {
			if m.Name != self.Name && len(m.PeerURLs) > 0 {
				out = append(out, oldMember{name: m.Name, peerURL: m.PeerURLs[0]})
			}
		}
		return out
	}
	for _, ep := range endpoints(ctx, n, true) {
		u, err := url.Parse(ep)
		if err != nil || u.Hostname() == "" || u.Hostname() == self.PrivateIP.String() {
			continue
		}
		out = append(out, oldMember{name: u.Hostname(), peerURL: "https://" + u.Host})
	}
	return out
}
