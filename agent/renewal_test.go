package agent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Short certificates for the renewal test. config.Validate refuses a
// validity under an hour, so the test sets them on the loaded config: renewal
// is due 30s after issue and checked every renewBefore/4 = 22.5s, so each
// node renews about every 45s and the first certificates expire 2m after
// they were issued, while the test runs.
const (
	renewalValidity    = 2 * time.Minute
	renewalRenewBefore = 90 * time.Second
)

// TestCertificateRenewalUnderLoad: three agents with two-minute certificates
// renew them at least twice while a writer runs; no request fails, no agent
// leaves phase healthy, every member's client and peer ports present the
// renewed certificates (etcd reads the files per handshake), and the
// writer's history and the members' hashes check out in the end.
func TestCertificateRenewalUnderLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token := h.startDiscovery(ctx, 3)

	nodes := make([]*node, 3)
	runtimes := make([]runtime.Runtime, 3)
	for i := range nodes {
		cfg := h.config(i+1, 3, h.v3Discovery(token))
		cfg.PKI.Validity = config.Duration(renewalValidity)
		cfg.PKI.RenewBefore = config.Duration(renewalRenewBefore)
		if _, err := cfg.Validate(); err != nil { // what a config file with these values gets
			t.Fatal(err)
		}
		nodes[i] = h.startWith(ctx, i+1, cfg, func(o *agent.Options) { runtimes[i] = o.Runtime })
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	var endpoints []string
	firstExpiry := time.Time{}
	for _, n := range nodes {
		endpoints = append(endpoints, n.agent.Report().ClientURL)
		for _, f := range []string{pki.ServerCertFile, pki.PeerCertFile, pki.ClientCertFile} {
			if c := loadCert(t, filepath.Join(n.certDir(), f)); c.NotAfter.After(firstExpiry) {
				firstExpiry = c.NotAfter
			}
		}
	}

	// The test's clients renew nothing themselves: they read node 1's
	// client pair, which its agent renews.
	cli := reloadingClient(t, nodes[0].certDir(), endpoints)
	w := lintest.Start(t, cli, 3)
	failures := countFailures(ctx, t, reloadingClient(t, nodes[0].certDir(), endpoints))
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch := watchRenewals(watchCtx, nodes)

	// Run past the first certificates' expiry, until every node renewed
	// every pair at least twice.
	deadline := time.Now().Add(4 * time.Minute)
	for !watch.renewedTwice() || time.Now().Before(firstExpiry.Add(10*time.Second)) {
		if time.Now().After(deadline) {
			t.Fatalf("certificates not renewed twice on every node within 4 minutes: %v", watch.summary())
		}
		time.Sleep(time.Second)
	}
	t.Logf("serials seen: %v", watch.summary())

	for _, n := range nodes {
		for _, tc := range []struct {
			port              string
			certFile, keyFile string
			presented         string
		}{
			{n.agent.Report().ClientURL, pki.ClientCertFile, pki.ClientKeyFile, pki.ServerCertFile},
			{n.agent.Report().PeerURL, pki.PeerCertFile, pki.PeerKeyFile, pki.PeerCertFile},
		} {
			presentedIsCurrent(t, n, tc.port, tc.certFile, tc.keyFile, tc.presented, firstExpiry)
		}
	}

	stopWatch()
	if bad := watch.unhealthy(); len(bad) > 0 {
		t.Errorf("agents left phase healthy during renewal: %v", bad)
	}
	if n := failures.stop(); n > 0 {
		t.Errorf("%d requests failed during renewal", n)
	}
	w.Verify(t, cli)
	lintest.HashKVEqual(t, cli, endpoints)

	// The agent's own client holds one connection since start, made with
	// certificates that have expired by now. Crash node 2's etcd: the
	// runtime restarts it, the agent's client reconnects, and only a
	// client presenting the renewed certificate gets the agent back to
	// healthy.
	if err := runtimes[1].(interface{ Kill(context.Context) error }).Kill(ctx); err != nil {
		t.Fatal(err)
	}
	// etcd is back within a second (restart backoff); then the agent's
	// probes, every 200ms through the new connection, must keep it healthy.
	time.Sleep(5 * time.Second)
	for until := time.Now().Add(3 * time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		if r := nodes[1].agent.Report(); r.Phase != report.PhaseHealthy {
			t.Fatalf("node 2 after its etcd restarted: %s %q, last error %q", r.Phase, r.Message, r.LastError)
		}
	}
	if err := nodes[1].agent.Report(); err.LastError != "" {
		t.Logf("node 2 last error (from the restart): %s", err.LastError)
	}
	for _, n := range []*node{nodes[0], nodes[2]} {
		if r := n.agent.Report(); r.LastError != "" {
			t.Errorf("node %d last error: %s", n.i, r.LastError)
		}
	}
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := pki.LoadCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reloadingClient(t *testing.T, certDir string, endpoints []string) *clientv3.Client {
	t.Helper()
	tlsCfg, err := pki.ReloadingClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// presentedIsCurrent dials rawURL with n's pair (certFile/keyFile) and
// checks the certificate the port presents is the one in n's presented
// file now, issued after the first certificates (they expired by now).
func presentedIsCurrent(t *testing.T, n *node, rawURL, certFile, keyFile, presented string, firstExpiry time.Time) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ReloadingClientTLS(n.certDir(), certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(n.certDir(), presented)
	for attempt := 0; ; attempt++ {
		before := loadCert(t, path).SerialNumber
		conn, err := tls.Dial("tcp", u.Host, cfg)
		if err != nil {
			t.Fatalf("node %d: dial %s: %v", n.i, rawURL, err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		after := loadCert(t, path).SerialNumber
		if before.Cmp(after) != 0 && attempt < 3 {
			continue // renewed while dialing: look again
		}
		if leaf.SerialNumber.Cmp(after) != 0 {
			t.Errorf("node %d: %s presents serial %x, %s on disk has %x", n.i, rawURL, leaf.SerialNumber, presented, after)
		}
		if !leaf.NotAfter.After(firstExpiry) {
			t.Errorf("node %d: %s presents a certificate expiring %s, not a renewed one", n.i, rawURL, leaf.NotAfter)
		}
		return
	}
}

// failureCounter puts a key every 100ms and counts the puts that fail.
type failureCounter struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	fails  int
	tries  int
	t      *testing.T
}

func countFailures(ctx context.Context, t *testing.T, cli *clientv3.Client) *failureCounter {
	ctx, cancel := context.WithCancel(ctx)
	f := &failureCounter{cancel: cancel, done: make(chan struct{}), t: t}
	go func() {
		defer close(f.done)
		for i := 0; ctx.Err() == nil; i++ {
			pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := cli.Put(pctx, "renewal/probe", fmt.Sprint(i))
			pcancel()
			f.mu.Lock()
			f.tries++
			if err != nil && ctx.Err() == nil {
				f.fails++
				t.Logf("probe put %d failed: %v", i, err)
			}
			f.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { f.stop() })
	return f
}

// stop ends the probe and returns how many puts failed.
func (f *failureCounter) stop() int {
	f.cancel()
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries < 100 {
		f.t.Errorf("failure probe made only %d puts", f.tries)
	}
	return f.fails
}

// renewalWatch polls every node's certificate files and reports once a
// second, and its agent's phase every 100ms.
type renewalWatch struct {
	nodes []*node
	mu    sync.Mutex
	// serials[node][file] is every serial seen, in order.
	serials map[int]map[string][]string
	bad     []string // phases other than healthy, with time and message
}

func watchRenewals(ctx context.Context, nodes []*node) *renewalWatch {
	w := &renewalWatch{nodes: nodes, serials: map[int]map[string][]string{}}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			w.poll(i%10 == 0)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	return w
}

var renewedFiles = []string{pki.ServerCertFile, pki.PeerCertFile, pki.ClientCertFile, pki.OperatorCertFile}

func (w *renewalWatch) poll(files bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		if r := n.agent.Report(); r.Phase != report.PhaseHealthy {
			w.bad = append(w.bad, fmt.Sprintf("node %d at %s: %s %q", n.i, time.Now().Format("15:04:05.000"), r.Phase, r.Message))
		}
		if !files {
			continue
		}
		if w.serials[n.i] == nil {
			w.serials[n.i] = map[string][]string{}
		}
		for _, f := range renewedFiles {
			c, err := pki.LoadCertificate(filepath.Join(n.certDir(), f))
			if err != nil {
				continue // mid-write never happens (rename), but do not fail in a goroutine
			}
			s := fmt.Sprintf("%x", c.SerialNumber)
			seen := w.serials[n.i][f]
			if len(seen) == 0 || seen[len(seen)-1] != s {
				w.serials[n.i][f] = append(seen, s)
			}
		}
	}
}

// renewedTwice: every node's every file had at least three serials.
func (w *renewalWatch) renewedTwice() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		for _, f := range renewedFiles {
			if len(w.serials[n.i][f]) < 3 {
				return false
			}
		}
	}
	return true
}

func (w *renewalWatch) summary() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for i, files := range w.serials {
		for f, s := range files {
			out[fmt.Sprintf("node%d/%s", i, f)] = len(s)
		}
	}
	return out
}

func (w *renewalWatch) unhealthy() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bad...)
}
