package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/internal/testcluster"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

// harness is a set of nodes on one machine (internal/testcluster): a CA,
// optionally a TLS v3 discovery service, and agents in this process with
// embedded etcd (or etcd in Podman containers), on a loopback /24 of the
// test's own, so scenarios run in parallel with each other and with other
// packages' tests.
type harness struct {
	e       *testcluster.Env
	t       testing.TB
	dir     string
	caCert  string
	caKey   string
	discURL string
	// discPKI holds the discovery service's certificates, which are the
	// test's own: a client certificate too.
	discPKI string
	// podmanSocket, when set, makes the nodes run etcd in containers
	// through this Podman socket instead of embedded.
	podmanSocket string
	// backups keeps the nodes' snapshots on (their default). Off otherwise:
	// a snapshot and a verifying etcd per cluster would load every other
	// test; the backup tests turn it on.
	backups bool
}

// Scenarios run in parallel (t.Parallel: on their own loopback blocks they
// share nothing) except those that change process state (t.Setenv: the S3
// credentials of the snapshot tests) and, as a precaution, those whose
// assertions are the most timing-bound: no write failing its 3s deadline
// while the leader is defragmented last (TestDefragFragmentedUnderLoad,
// flaky even alone before), metrics equal to a report taken a moment later
// (TestMetricsEndpoint), and a founder restarted a moment after the others
// (TestFailedFirstStartIsNotFenced: it fenced instead of bootstrapping in
// one of seven sequential runs here). Sequential tests run alone, before
// the parallel ones.
func newHarness(t testing.TB) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-node agent scenario")
	}
	e := testcluster.New(t, "test")
	return &harness{e: e, t: t, dir: e.Dir, caCert: e.CACert, caKey: e.CAKey, discPKI: e.TestPKI}
}

// usePodman switches the harness's nodes to the Podman runtime on the rootful
// test socket (.ci/podman-setup.sh), so etcd runs as a real container.
func (h *harness) usePodman() {
	h.t.Helper()
	if !h.e.UsePodman() {
		h.t.Fatal(testcluster.PodmanHint)
	}
	h.podmanSocket = h.e.PodmanSocket
}

// grace is the nodes' deadMemberGrace: short, so tests need not wait long
// to replace a dead member.
func (h *harness) grace() time.Duration { return h.e.Grace }

// ip is node i's address; ip(0) is the discovery service's.
func (h *harness) ip(i int) string { return h.e.IP(i) }

// startDiscovery runs a TLS v3 discovery service and creates a token.
func (h *harness) startDiscovery(ctx context.Context, size int) string {
	h.t.Helper()
	url, token := h.e.ServeDiscovery(ctx, size)
	h.discURL = url
	return token
}

// client is a TLS clientv3 of the comma-separated endpoints, using the
// agent client cert of certDir.
func (h *harness) client(endpoint, certDir string) *clientv3.Client {
	h.t.Helper()
	return h.e.Client(certDir, strings.Split(endpoint, ",")...)
}

// v3Discovery is the cluster.discovery block for the token.
func (h *harness) v3Discovery(token string) config.Discovery {
	return testcluster.V3Discovery(h.discURL, token)
}

// staticDiscovery lists nodes idx as the founders.
func (h *harness) staticDiscovery(idx ...int) config.Discovery { return h.e.StaticDiscovery(idx...) }

// node is one agent under test.
type node struct {
	e      *testcluster.Env
	run    *testcluster.Agent
	i      int
	cfg    *config.Config
	agent  *agent.Agent
	notify *notifytest.Listener
	done   chan error
}

func (n *node) certDir() string { return n.cfg.PKI.Dir }

// config writes node i's config.yaml from the config types and loads it
// through config.Load, as `etcd-agent run` does.
func (h *harness) config(i, size int, disc config.Discovery) *config.Config {
	h.t.Helper()
	h.e.Snapshots = h.backups
	h.e.PodmanSocket = h.podmanSocket
	cfg := h.e.NodeConfig(i, size)
	cfg.Cluster.Discovery = disc
	_, loaded := h.e.WriteConfig(i, cfg)
	return loaded
}

// start runs an agent for cfg with a real sd_notify socket.
func (h *harness) start(ctx context.Context, i int, cfg *config.Config) *node {
	h.t.Helper()
	return h.startWith(ctx, i, cfg, nil)
}

// startWith is start with a chance to change the agent's options.
func (h *harness) startWith(ctx context.Context, i int, cfg *config.Config, edit func(*agent.Options)) *node {
	h.t.Helper()
	a := h.e.StartAgent(ctx, i, cfg, edit)
	return &node{e: h.e, run: a, i: i, cfg: cfg, agent: a.Agent, notify: a.Notify, done: a.Done}
}

// stop shuts the agent down and waits for it (idempotent).
func (n *node) stop() { n.run.Stop() }

// waitReady waits for the agent's READY and returns the notifications seen
// up to and including it.
func (n *node) waitReady(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	msgs, err := n.run.WaitReady(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}
