package agent_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

// unreachableRegistry is the node's runtime (real embedded etcd) behind an
// image that cannot be pulled for the first failures attempts: the
// registry is unreachable while the instance boots (no NAT route yet, a
// regional outage). It fetches as Podman does, before etcd first starts.
type unreachableRegistry struct {
	runtime.Runtime
	failures int64
	pulls    atomic.Int64
}

var _ runtime.ImageFetcher = (*unreachableRegistry)(nil)

func (r *unreachableRegistry) EnsureImage(ctx context.Context, _ etcdconf.Spec) error {
	if r.pulls.Add(1) <= r.failures {
		return errors.New("image gcr.io/etcd-development/etcd:v3.7.3 not present and pull failed: dial tcp 34.0.0.1:443: connect: connection refused")
	}
	return nil
}

// TestBootWaitsForTheImageRegistry: a founder whose etcd image cannot be
// pulled yet waits in-process, saying so in STATUS=, instead of ending the
// agent (which systemd restarts only up to its start limit); once the pull
// succeeds it bootstraps and sends READY=1.
func TestBootWaitsForTheImageRegistry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var rt *unreachableRegistry
	n := h.startWith(ctx, 1, h.config(1, 1, h.staticDiscovery(1)), func(o *agent.Options) {
		rt = &unreachableRegistry{Runtime: o.Runtime, failures: 3}
		o.Runtime = rt
	})
	msgs := n.waitReady(t, readyTimeout)
	var waited []string
	for _, m := range msgs {
		if st := notifytest.Field(m, "STATUS"); strings.Contains(st, "etcd image") && strings.Contains(st, "retrying") {
			waited = append(waited, st)
		}
	}
	if len(waited) != 3 || rt.pulls.Load() != 4 {
		t.Fatalf("%d pulls, %d STATUS lines saying the image is retried (want 4 pulls, 3 lines): %q", rt.pulls.Load(), len(waited), msgs)
	}
	t.Logf("STATUS while the registry was unreachable: %q", waited[0])
}
