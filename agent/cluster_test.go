package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

const readyTimeout = 90 * time.Second

// memberIDs returns name → member ID as n's member list reports them.
func memberIDs(t *testing.T, h *harness, n *node) map[string]uint64 {
	t.Helper()
	cli := h.client(n.agent.Report().ClientURL, n.certDir())
	defer cli.Close()
	return members(t, cli)
}

// matchSequence checks that the notifications follow the expected steps in
// order. Each step is a regexp that must match at least one message, and
// messages between steps may only match the current or the next step.
func matchSequence(t *testing.T, msgs []string, steps []string) {
	t.Helper()
	res := make([]*regexp.Regexp, len(steps))
	for i, s := range steps {
		res[i] = regexp.MustCompile(s)
	}
	step, matched := 0, false
	for _, m := range msgs {
		if m == "WATCHDOG=1" {
			continue
		}
		switch {
		case res[step].MatchString(m):
			matched = true
		case matched && step+1 < len(res) && res[step+1].MatchString(m):
			step++
		default:
			t.Fatalf("notification %q does not fit step %d (%s) of the expected sequence\nall: %q", m, step, steps[step], msgs)
		}
	}
	if step != len(res)-1 || !matched {
		t.Fatalf("sequence ended at step %d of %d\nall: %q", step, len(res), msgs)
	}
}

// bootstrapSteps is what systemd sees on a fresh node: identity,
// certificates, discovery, etcd start, waiting for health, READY.
var bootstrapSteps = []string{
	`^STATUS=identity$`,
	`^STATUS=reading node identity from static$`,
	`^STATUS=(certificates|issuing certificates from .*)$`,
	// A founding member that is late (about 1 s under CI's load) finds the
	// other two already formed: the formation fence has it join as a new
	// member ("a formed cluster answers"), so under the membership lock it
	// removes its never-started member and adds itself as a learner, which
	// is promoted before READY=1 (the last step still wants 3/3 voters).
	`^STATUS=(membership|registering in discovery|waiting for \d more members in discovery \(\d/\d registered\)|waiting for the cluster's membership lock|` +
		`removing member etcd-127-\d+-\d+-\d+: past self: same peer URL https://127\.\d+\.\d+\.\d+:2380, does not answer, and its data is gone from this node|` +
		`adding this node as a learner: .*)$`,
	`^STATUS=(etcd|starting etcd \(embedded\))$`,
	`^STATUS=(ready|degraded: .*|learner, .*)$`,
	`^READY=1\nSTATUS=healthy, leader etcd-127-\d+-\d+-\d+, 3/3 voters$`,
}

// restartSteps: a node with data never touches discovery.
var restartSteps = []string{
	`^STATUS=identity$`,
	`^STATUS=reading node identity from static$`,
	`^STATUS=(certificates|issuing certificates from .*)$`,
	`^STATUS=(membership|etcd|starting etcd \(embedded\))$`,
	`^STATUS=(ready|degraded: .*)$`,
	`^READY=1\nSTATUS=healthy, leader etcd-127-\d+-\d+-\d+, 3/3 voters$`,
}

// TestV3DiscoveryBootstrapRestartAndFullRegistry: three agents started at
// once form one cluster through v3 discovery; all restarted keep their member
// IDs and data; a fourth node on the full registry changes nothing; losing
// quorum is reported as degraded.
func TestV3DiscoveryBootstrapRestartAndFullRegistry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token := h.startDiscovery(ctx, 3)

	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = h.start(ctx, i+1, h.config(i+1, 3, h.v3Discovery(token)))
	}
	for _, n := range nodes {
		matchSequence(t, n.waitReady(t, readyTimeout), bootstrapSteps)
	}
	before := memberIDs(t, h, nodes[0])
	if len(before) != 3 {
		t.Fatalf("members = %v, want 3", before)
	}
	cli := h.client(nodes[1].agent.Report().ClientURL, nodes[1].certDir())
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	if _, err := cli.Put(wctx, "survives", "restart"); err != nil {
		t.Fatal(err)
	}
	wcancel()
	cli.Close()

	// Stop all, start all: same members, same data, no discovery.
	for _, n := range nodes {
		n.stop()
	}
	for i, n := range nodes {
		nodes[i] = h.start(ctx, n.i, n.cfg)
	}
	for _, n := range nodes {
		matchSequence(t, n.waitReady(t, readyTimeout), restartSteps)
	}
	after := memberIDs(t, h, nodes[2])
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("member IDs changed across restart: before %v after %v", before, after)
	}
	cli = h.client(nodes[0].agent.Report().ClientURL, nodes[0].certDir())
	defer cli.Close()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	resp, err := cli.Get(rctx, "survives")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "restart" {
		t.Fatalf("key written before the restart: %v, %v", resp, err)
	}

	// A fourth node finds the registry full and the cluster at its size with
	// every member healthy: it waits as standby and changes nothing.
	fourth := h.start(ctx, 4, h.config(4, 3, h.v3Discovery(token)))
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if _, err := fourth.notify.Until(sctx, func(m string) bool { return strings.Contains(m, "standby: cluster has 3/3 voters, all healthy") }); err != nil {
		t.Fatalf("fourth node: %v (report %s)", err, fourth.agent.Report().Message)
	}
	if got := memberIDs(t, h, nodes[0]); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("members after a fourth node: %v, want %v", got, before)
	}
	fourth.stop()

	// Quorum loss: with two of three stopped the survivor says degraded and
	// does not claim health.
	nodes[1].stop()
	nodes[2].stop()
	qctx, qcancel := context.WithTimeout(ctx, 60*time.Second)
	defer qcancel()
	msgs, err := nodes[0].notify.Until(qctx, func(m string) bool { return strings.HasPrefix(m, "STATUS=degraded") })
	if err != nil {
		t.Fatalf("survivor never reported degraded: %v\n%q", err, msgs)
	}
	if r := nodes[0].agent.Report(); r.Ready || r.Phase != "degraded" {
		t.Fatalf("survivor report: ready=%v phase=%s", r.Ready, r.Phase)
	}
}

// TestStaticBootstrap forms a cluster from a fixed peer list.
func TestStaticBootstrap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	block := h.staticDiscovery(1, 2, 3)
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = h.start(ctx, i+1, h.config(i+1, 3, block))
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	if got := memberIDs(t, h, nodes[0]); len(got) != 3 {
		t.Fatalf("members = %v", got)
	}
}

// repoBin locates a binary built by make (bin/ at the module root).
func repoBin(t *testing.T, name, target string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: run `make %s`", p, target)
	}
	return p
}

// TestV2DiscoveryBootstrap forms a cluster through the v2 discovery
// protocol served by a real etcd 3.5 with the v2 keys API, and starts etcd
// 3.7 (which has no v2 discovery) with the static cluster it found.
func TestV2DiscoveryBootstrap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	bin := repoBin(t, "etcd-v2", "etcd-v2")
	ip := h.ip(0)
	clientURL := fmt.Sprintf("http://%s:%d", ip, testnet.FreePort(t, ip))
	peerURL := fmt.Sprintf("http://%s:%d", ip, testnet.FreePort(t, ip))
	cmd := exec.CommandContext(ctx, bin, "--enable-v2", "--name", "v2disc", "--data-dir", filepath.Join(h.dir, "v2data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "v2disc="+peerURL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	registry := clientURL + "/v2/keys/_etcd/registry/v2token"
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPut, registry+"/_config/size", strings.NewReader(url.Values{"value": {"3"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode < 300 {
			resp.Body.Close()
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 etcd never accepted the size key: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = h.start(ctx, i+1, h.config(i+1, 3, config.Discovery{URL: registry}))
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	if got := memberIDs(t, h, nodes[0]); len(got) != 3 {
		t.Fatalf("members = %v", got)
	}
}

// TestInteropWithPlainEtcd: two agents and one plain etcd binary using its
// own --discovery-token against the same token form one healthy cluster.
func TestInteropWithPlainEtcd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	bin := repoBin(t, "etcd", "etcd-binaries")
	token := h.startDiscovery(ctx, 3)

	// The plain etcd gets certificates from the same CA, like any member.
	ip := h.ip(3)
	certDir := filepath.Join(h.dir, "plain-pki")
	ca, err := pki.LoadCA(h.caCert, h.caKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: certDir, NodeIP: netip.MustParseAddr(ip), Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	f := func(name string) string { return filepath.Join(certDir, name) }
	cmd := exec.CommandContext(ctx, bin, "--name", "plain-etcd", "--data-dir", filepath.Join(h.dir, "plain-data"),
		"--listen-client-urls", "https://"+ip+":2379", "--advertise-client-urls", "https://"+ip+":2379",
		"--listen-peer-urls", "https://"+ip+":2380", "--initial-advertise-peer-urls", "https://"+ip+":2380",
		"--cert-file", f(pki.ServerCertFile), "--key-file", f(pki.ServerKeyFile), "--trusted-ca-file", f(pki.CACertFile), "--client-cert-auth",
		"--peer-cert-file", f(pki.PeerCertFile), "--peer-key-file", f(pki.PeerKeyFile), "--peer-trusted-ca-file", f(pki.CACertFile), "--peer-client-cert-auth",
		"--discovery-token", token, "--discovery-endpoints", h.discURL, "--discovery-insecure-transport=false",
		"--discovery-cert", f(pki.ClientCertFile), "--discovery-key", f(pki.ClientKeyFile), "--discovery-cacert", f(pki.CACertFile),
		"--listen-metrics-urls", "", "--log-level", "warn")
	logf, err := os.Create(filepath.Join(h.dir, "plain-etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("plain etcd log:\n%s", log)
		}
	})

	nodes := make([]*node, 2)
	for i := range nodes {
		nodes[i] = h.start(ctx, i+1, h.config(i+1, 3, h.v3Discovery(token)))
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	ids := memberIDs(t, h, nodes[0])
	if _, ok := ids["plain-etcd"]; !ok || len(ids) != 3 {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("members = %v, want the two agents and plain-etcd\nplain etcd log:\n%s", ids, log)
	}
	cli := h.client("https://"+ip+":2379", nodes[0].certDir())
	defer cli.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if _, err := cli.Put(pctx, "through", "plain"); err != nil {
		t.Fatalf("write through the plain etcd member: %v", err)
	}
	// The registry holds the plain etcd's own registration, under the ID we
	// compute for it.
	dcli := h.client(h.discURL, h.discPKI)
	defer dcli.Close()
	_, regs, err := discovery.ShowToken(pctx, dcli, token)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		want, err := discovery.MemberID(token, r.Member())
		if err != nil || want != r.ID {
			t.Errorf("registration %s: id %s, computed %s (%v)", r.Name, r.ID, want, err)
		}
	}
}

// TestDiscoveryUnreachableIsReported: a node whose discovery service is
// down says so in STATUS and keeps retrying.
func TestDiscoveryUnreachableIsReported(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dead := fmt.Sprintf("https://%s:%d", h.ip(0), testnet.FreePort(t, h.ip(0)))
	n := h.start(ctx, 1, h.config(1, 3, config.Discovery{Endpoints: []string{dead}, Token: "nosuch"}))
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	msgs, err := n.notify.Until(wctx, func(m string) bool {
		return strings.Contains(m, "unreachable") && strings.Contains(m, "retrying")
	})
	if err != nil {
		t.Fatalf("no unreachable status: %v\n%q", err, msgs)
	}
	if notifytest.Field(msgs[len(msgs)-1], "STATUS") == "" {
		t.Fatalf("last message has no STATUS: %q", msgs[len(msgs)-1])
	}
}

// TestFailedFirstStartIsNotFenced: every founder's first etcd start fails
// (its client port is taken) after it recorded its start in discovery. As
// etcd never ran (no WAL), each withdraws its record, and once the ports
// are free the founders bootstrap the cluster instead of waiting forever to
// rejoin a cluster that never formed.
func TestFailedFirstStartIsNotFenced(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token := h.startDiscovery(ctx, 3)
	var blockers []net.Listener
	for i := 1; i <= 3; i++ {
		l, err := net.Listen("tcp", h.ip(i)+":2379")
		if err != nil {
			t.Fatal(err)
		}
		blockers = append(blockers, l)
	}
	cfgs := make([]*config.Config, 3)
	first := make([]*node, 3)
	for i := range cfgs {
		cfgs[i] = h.config(i+1, 3, h.v3Discovery(token))
		first[i] = h.start(ctx, i+1, cfgs[i])
	}
	for i, n := range first {
		select {
		case err := <-n.done:
			n.done <- err
			if err == nil || !strings.Contains(err.Error(), "in use") {
				t.Fatalf("node %d ended with %v, want the port-in-use failure", i+1, err)
			}
		case <-time.After(readyTimeout):
			t.Fatalf("node %d did not fail on its taken port: %s", i+1, n.agent.Report().Message)
		}
	}
	for _, l := range blockers {
		l.Close()
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = h.start(ctx, i+1, cfgs[i])
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
		var bootstrapped bool
		for _, d := range n.agent.Report().Decisions {
			bootstrapped = bootstrapped || d.Action == report.ActionBootstrap
		}
		if !bootstrapped {
			t.Errorf("node %d did not bootstrap: %+v", n.i, n.agent.Report().Decisions)
		}
	}
}
