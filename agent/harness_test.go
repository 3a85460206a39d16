package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
	"github.com/etcd-agent/etcd-agent/systemd"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

// harness is a set of nodes on one machine: a CA, optionally a TLS v3
// discovery service, and agents on 127.0.0.x with embedded etcd. Each test
// takes its own /24-free block of loopback addresses (ipBase) so packages
// testing in parallel never collide.
type harness struct {
	t      testing.TB
	dir    string
	caCert string
	caKey  string
	ipBase int
	// subnet is the first three octets of the nodes' addresses; "" is
	// 127.0.0 (newHarnessNet takes another /24).
	subnet  string
	discURL string
	discPKI string
	// podmanSocket, when set, makes the nodes run etcd in containers
	// through this Podman socket instead of embedded.
	podmanSocket string
	// backups keeps the nodes' snapshots on (their default). Off otherwise:
	// a snapshot and a verifying etcd per cluster would load every other
	// test; the backup tests turn it on.
	backups bool
}

// usePodman switches the harness's nodes to the Podman runtime on the rootful
// test socket (.ci/podman-setup.sh), so etcd runs as a real container.
func (h *harness) usePodman() {
	h.t.Helper()
	sock := os.Getenv("ETCD_AGENT_TEST_PODMAN_SOCKET")
	if sock == "" {
		h.t.Fatal("ETCD_AGENT_TEST_PODMAN_SOCKET is not set: run .ci/podman-setup.sh as root and export what it prints")
	}
	h.podmanSocket = sock
}

// runtimeYAML is the etcd (and podman) part of node i's config.
func (h *harness) runtimeYAML(i int) string {
	if h.podmanSocket == "" {
		return "etcd:\n  runtime: embedded\n"
	}
	return fmt.Sprintf("etcd:\n  runtime: podman\npodman:\n  socket: %s\n  containerName: etcd-agent-test-%s\n  stopTimeout: 10s\n",
		h.podmanSocket, strings.ReplaceAll(h.ip(i), ".", "-"))
}

func newHarness(t testing.TB, ipBase int) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-node agent scenario")
	}
	dir := t.TempDir()
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, dir: dir, caCert: caCert, caKey: caKey, ipBase: ipBase}
}

// newHarnessNet is newHarness on another loopback /24, e.g. "127.0.3".
func newHarnessNet(t testing.TB, subnet string, ipBase int) *harness {
	t.Helper()
	h := newHarness(t, ipBase)
	h.subnet = subnet
	return h
}

// grace is the nodes' deadMemberGrace: short, so tests need not wait long
// to replace a dead member.
func (h *harness) grace() time.Duration { return 3 * time.Second }

func (h *harness) ip(i int) string {
	subnet := h.subnet
	if subnet == "" {
		subnet = "127.0.0"
	}
	return fmt.Sprintf("%s.%d", subnet, h.ipBase+i)
}

// startDiscovery runs a TLS v3 discovery service and creates a token.
func (h *harness) startDiscovery(ctx context.Context, size int) string {
	h.t.Helper()
	ip := h.ip(0)
	h.discPKI = filepath.Join(h.dir, "discovery-pki")
	ca, err := pki.LoadCA(h.caCert, h.caKey, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: h.discPKI, NodeIP: netip.MustParseAddr(ip), Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
		h.t.Fatal(err)
	}
	h.discURL = fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(h.t, ip))
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- discovery.Serve(ctx, discovery.ServeConfig{
			DataDir: filepath.Join(h.dir, "discovery-data"), ListenClientURL: h.discURL,
			CertFile: filepath.Join(h.discPKI, pki.ServerCertFile), KeyFile: filepath.Join(h.discPKI, pki.ServerKeyFile),
			TrustedCAFile: filepath.Join(h.discPKI, pki.CACertFile), ClientCertAuth: true,
		}, func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-errc:
		h.t.Fatalf("discovery serve: %v", err)
	case <-time.After(30 * time.Second):
		h.t.Fatal("discovery service not ready")
	}
	cli := h.client(h.discURL, h.discPKI)
	defer cli.Close()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	token, err := discovery.NewToken(tctx, cli, size)
	if err != nil {
		h.t.Fatal(err)
	}
	return token
}

// client is a TLS clientv3 using the agent client cert of certDir.
func (h *harness) client(endpoint, certDir string) *clientv3.Client {
	h.t.Helper()
	tlsCfg, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		h.t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoint, ","), TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		h.t.Fatal(err)
	}
	return cli
}

// discoveryYAML renders the cluster.discovery block for the token.
func (h *harness) v3Discovery(token string) string {
	return fmt.Sprintf("    endpoints: [%s]\n    token: %s\n", h.discURL, token)
}

// node is one agent under test.
type node struct {
	i      int
	dir    string
	cfg    *config.Config
	agent  *agent.Agent
	notify *notifytest.Listener
	cancel context.CancelFunc
	done   chan error
}

func (n *node) certDir() string { return n.cfg.PKI.Dir }

// config writes node i's config.yaml (as `etcd-agent local up` does) and
// loads it through config.Load.
func (h *harness) config(i, size int, discoveryBlock string) *config.Config {
	h.t.Helper()
	nodeDir := filepath.Join(h.dir, fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(nodeDir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	yaml := fmt.Sprintf(`cluster:
  name: test
  size: %d
  deadMemberGrace: %s
  discovery:
%snode:
  identity: static
  ip: %s
  dataDir: %s
pki:
  caCert: %s
  caKey: %s
  dir: %s
%sagent:
  statusFile: %s
  healthInterval: 200ms
backup:
  disabled: %t
`, size, h.grace(), discoveryBlock, h.ip(i), filepath.Join(nodeDir, "data"), h.caCert, h.caKey,
		filepath.Join(nodeDir, "pki"), h.runtimeYAML(i), filepath.Join(nodeDir, "status.json"), !h.backups)
	path := filepath.Join(nodeDir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		h.t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Source{Path: path, DefaultImageTag: "v3.7.3"})
	if err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

// start runs an agent for cfg with a real sd_notify socket.
func (h *harness) start(ctx context.Context, i int, cfg *config.Config) *node {
	h.t.Helper()
	return h.startWith(ctx, i, cfg, nil)
}

// startWith is start with a chance to change the agent's options.
func (h *harness) startWith(ctx context.Context, i int, cfg *config.Config, edit func(*agent.Options)) *node {
	h.t.Helper()
	// ETCD_AGENT_TEST_LOGDIR keeps the agents' logs after the test (its
	// temporary directory is removed, pass or fail).
	logDir := filepath.Dir(cfg.Agent.StatusFile)
	if d := os.Getenv("ETCD_AGENT_TEST_LOGDIR"); d != "" {
		logDir = filepath.Join(d, strings.ReplaceAll(h.t.Name(), "/", "_"))
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			h.t.Fatal(err)
		}
	}
	logFile, err := os.Create(filepath.Join(logDir, fmt.Sprintf("node%d-%d.log", i, time.Now().UnixNano())))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { logFile.Close() })
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
	rt, err := agent.NewRuntime(cfg, logger)
	if err != nil {
		h.t.Fatal(err)
	}
	l := notifytest.New(h.t)
	opts := agent.Options{
		Config: cfg, Identity: agent.NewIdentity(cfg, logger), Runtime: rt,
		Notifier: systemd.NewNotifier(l.Path(), logger), Logger: logger,
		WatchdogInterval: 100 * time.Millisecond,
	}
	if h.podmanSocket != "" {
		// Stopping a node stops its container too: the instance is gone.
		opts.StopEtcdOnExit = true
		h.t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if r, ok := rt.(interface{ Remove(context.Context) error }); ok {
				if err := r.Remove(ctx); err != nil {
					h.t.Logf("remove node %d container: %v", i, err)
				}
			}
		})
	}
	if edit != nil {
		edit(&opts)
	}
	a, err := agent.New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &node{i: i, dir: filepath.Dir(cfg.Agent.StatusFile), cfg: cfg, agent: a, notify: l, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- a.Run(ctx) }()
	h.t.Cleanup(n.stop)
	return n
}

// stop shuts the agent down and waits for it (idempotent).
func (n *node) stop() {
	n.cancel()
	select {
	case <-n.done:
		n.done <- nil // later callers return at once
	case <-time.After(60 * time.Second):
		panic(fmt.Sprintf("node %d did not stop", n.i))
	}
}

// waitReady waits for the agent's READY and returns the notifications seen
// up to and including it.
func (n *node) waitReady(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msgs, err := n.notify.UntilReady(ctx)
	if err != nil {
		var shown []string
		for _, m := range msgs {
			if m != "WATCHDOG=1" {
				shown = append(shown, m)
			}
		}
		t.Fatalf("node %d not ready after %s (report: %s %s)\nnotifications other than WATCHDOG=1: %q", n.i, timeout, n.agent.Report().Phase, n.agent.Report().Message, shown)
	}
	return msgs
}
