package membership

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// EndpointBook is a discovery source that also keeps the formed cluster's
// client URLs (v3 discovery): founding members may be long gone when a
// replacement boots.
type EndpointBook interface {
	ClusterEndpoints(ctx context.Context) ([]string, error)
	PublishClusterEndpoints(ctx context.Context, endpoints []string) error
}

// publishTimeout bounds publishing the endpoints.
const publishTimeout = 10 * time.Second

// PublishEndpoints records the cluster's client URLs in discovery after this
// node changed the membership (bootstrap, join, leave, recovery). Best
// effort: a failure only leaves an older list there.
func (j *Job) PublishEndpoints(ctx context.Context, eps []string) {
	src, err := j.n.Discovery()
	if err != nil {
		return
	}
	book, ok := src.(EndpointBook)
	if !ok || len(eps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	eps = slices.Clone(eps)
	slices.Sort(eps)
	if err := book.PublishClusterEndpoints(ctx, eps); err != nil {
		j.n.Logger().Warn("publish cluster endpoints to discovery", "err", err)
	}
}

// candidateEndpoints are the client URLs where a formed cluster may answer:
// the discovered members', the ones published in discovery and the ones this
// node last knew, never its own.
func (j *Job) candidateEndpoints(ctx context.Context, res discovery.Result) []string {
	self := j.selfClientURL()
	port := j.n.Config().Etcd.ClientPort
	var eps []string
	for _, m := range res.Members {
		for _, p := range strings.Split(m.PeerURL, ",") {
			if ep, err := cluster.ClientURLFor(p, port); err == nil {
				eps = append(eps, ep)
			}
		}
	}
	eps = append(eps, sidefile.ReadEndpoints(j.dataDir())...)
	if src, err := j.n.Discovery(); err == nil {
		if book, ok := src.(EndpointBook); ok {
			published, err := book.ClusterEndpoints(ctx)
			if err != nil {
				j.n.Logger().Warn("read cluster endpoints from discovery", "err", err)
			}
			eps = append(eps, published...)
		}
	}
	slices.Sort(eps)
	eps = slices.Compact(eps)
	return slices.DeleteFunc(eps, func(ep string) bool { return ep == self })
}
