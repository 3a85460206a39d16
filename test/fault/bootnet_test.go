package fault_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/imdssim"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

// throttle stands between the agent and IMDS: it answers every request
// with HTTP 429, as a throttled IMDS does, until forward points it at a
// server.
type throttle struct {
	url       string
	throttled atomic.Int64
	mu        sync.Mutex
	proxy     *httputil.ReverseProxy
}

func startThrottle(t *testing.T, ip string) *throttle {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	th := &throttle{url: "http://" + l.Addr().String()}
	srv := &http.Server{Handler: th, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return th
}

func (th *throttle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	th.mu.Lock()
	p := th.proxy
	th.mu.Unlock()
	if p == nil {
		th.throttled.Add(1)
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
		return
	}
	p.ServeHTTP(w, r)
}

// forward sends every later request to endpoint.
func (th *throttle) forward(t *testing.T, endpoint string) {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	th.mu.Lock()
	th.proxy = httputil.NewSingleHostReverseProxy(u)
	th.mu.Unlock()
}

// TestBootWaitsForThrottledIMDS: a replacement instance boots while IMDS
// answers every request with HTTP 429 and the metadata service itself is
// not up yet. The agent (a real process, node.identity imds) must not exit:
// it retries in-process with capped backoff and says so in STATUS= and in
// its report, again and again. Then AWS's IMDS simulator starts and the
// throttling ends: the node reads its identity from it, forms its cluster
// and sends READY=1; a writer, and the proof.
func TestBootWaitsForThrottledIMDS(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useStaticDiscovery(1)
	th := startThrottle(t, c.ip(1))
	const instanceID = "i-0b00700000000001a"
	c.configure = func(cfg *config.Config) {
		cfg.Node.Identity, cfg.Node.IP, cfg.Node.IMDSEndpoint = "imds", "", th.url
	}
	n := c.node(1)
	n.start()

	// Wait for two STATUS= lines that say IMDS is retried: two rounds of
	// the in-process retry, each after the IMDS client's own attempts
	// gave up — where the old agent exited.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-n.proc.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var retries []string
	for len(retries) < 2 {
		msg, err := n.Notify.Next(ctx)
		if err != nil {
			if !n.proc.Running() {
				code, _ := n.proc.wait(time.Second)
				t.Fatalf("the agent exited (code %d) while IMDS answered 429 (%d requests throttled); it must wait in-process. STATUS lines %q\n%s",
					code, th.throttled.Load(), n.Notify.Seen(), n.proc.tail(15))
			}
			t.Fatalf("no STATUS= saying IMDS is retried: %v; STATUS lines %q\n%s", err, n.Notify.Seen(), n.proc.tail(15))
		}
		st := notifytest.Field(msg, "STATUS")
		if strings.Contains(st, "IMDS") && strings.Contains(st, "429") && strings.Contains(st, "retrying") {
			retries = append(retries, st)
		}
	}
	t.Logf("STATUS while throttled: %q", retries[len(retries)-1])
	if r := n.report(); r.Phase != report.PhaseIdentity || !strings.Contains(r.Message, "IMDS") || !strings.Contains(r.Message, "retrying") {
		t.Errorf("the report says phase %q %q, want the identity phase saying IMDS is retried", r.Phase, r.Message)
	}
	throttled := th.throttled.Load()

	// The metadata service comes up late, and the throttling ends.
	sim := imdssim.Start(t, imdssim.Options{IP: c.ip(1), InstanceID: instanceID, PrivateIP: c.ip(1)})
	th.forward(t, sim.Endpoint)
	n.waitReady(readyTimeout)
	r := n.report()
	if r.Name != c.name(1) || r.InstanceID != instanceID {
		t.Errorf("identity from IMDS: name %q, instance %q; want %q, %q", r.Name, r.InstanceID, c.name(1), instanceID)
	}
	t.Logf("%d requests throttled before IMDS answered; ready as %s (%s)", throttled, r.Name, r.InstanceID)

	cli := c.client(1)
	w := lintest.Start(t, cli, 2)
	waitAcked(t, w, 50)
	c.proof(w, cli, 1)
}

// TestMissingDiscoveryTokenExits78: a token the discovery service does not
// have is a configuration error, not an outage: the agent exits 78 at once
// (the unit's RestartPreventExitStatus), naming the field and the fix,
// instead of exiting 1 into systemd's restarts until the start limit.
func TestMissingDiscoveryTokenExits78(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useV3Discovery(1)
	c.configure = func(cfg *config.Config) { cfg.Cluster.Discovery.Token = "no-such-token" }
	n := c.node(1)
	n.start()
	code, err := n.proc.wait(time.Minute)
	if err != nil {
		t.Fatalf("the agent with a token the registry does not have still runs: %v\n%s", err, n.proc.tail(10))
	}
	out := n.proc.tail(3)
	if code != exitConfig || !strings.Contains(out, "cluster.discovery.token") || !strings.Contains(out, "etcd-agent discovery new") {
		t.Fatalf("exit %d, want %d naming cluster.discovery.token and the fix:\n%s", code, exitConfig, out)
	}
	t.Logf("exit %d: %s", code, n.proc.tail(1))
}
