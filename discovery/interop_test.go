package discovery

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// TestV3InteropWithPlainEtcd is the proof that our registrations are etcd's:
// a plain etcd process using its own v3 discovery and two agents' V3
// registrations fill one size-3 token, every side sees all three, the plain
// etcd's key is the ID we compute for it, and the three then form one
// healthy cluster (plain etcd + two embedded members started from Result).
func TestV3InteropWithPlainEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	etcdBin := binary(t, "ETCD_AGENT_TEST_ETCD", "etcd", "etcd-binaries")
	p := newTestPKI(t)
	ds := startDiscovery(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	token, err := NewToken(ctx, ds.Client, 3)
	if err != nil {
		t.Fatal(err)
	}

	// The plain etcd on 127.0.0.31.
	plainIP := "127.0.0.31"
	plainDir := p.node(plainIP)
	plain := Member{Name: "plain", PeerURL: fmt.Sprintf("https://%s:%d", plainIP, testnet.FreePort(t, plainIP))}
	plainClient := fmt.Sprintf("https://%s:%d", plainIP, testnet.FreePort(t, plainIP))
	cert := func(name string) string { return filepath.Join(plainDir, name) }
	startProcess(t, etcdBin,
		"--name", plain.Name,
		"--data-dir", filepath.Join(t.TempDir(), "plain.etcd"),
		"--listen-peer-urls", plain.PeerURL, "--initial-advertise-peer-urls", plain.PeerURL,
		"--listen-client-urls", plainClient, "--advertise-client-urls", plainClient,
		"--cert-file", cert(pki.ServerCertFile), "--key-file", cert(pki.ServerKeyFile),
		"--trusted-ca-file", cert(pki.CACertFile), "--client-cert-auth",
		"--peer-cert-file", cert(pki.PeerCertFile), "--peer-key-file", cert(pki.PeerKeyFile),
		"--peer-trusted-ca-file", cert(pki.CACertFile), "--peer-client-cert-auth",
		"--discovery-token", token, "--discovery-endpoints", ds.Endpoint,
		"--discovery-insecure-transport=false",
		"--discovery-cert", cert(pki.ClientCertFile), "--discovery-key", cert(pki.ClientKeyFile),
		"--discovery-cacert", cert(pki.CACertFile),
	)

	// Two agents on 127.0.0.32 and .33.
	type agent struct {
		ip, certs, clientURL string
		self                 Member
	}
	var agents []*agent
	for i, ip := range []string{"127.0.0.32", "127.0.0.33"} {
		agents = append(agents, &agent{
			ip: ip, certs: p.node(ip),
			clientURL: fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(t, ip)),
			self:      Member{Name: fmt.Sprintf("agent%d", i+1), PeerURL: fmt.Sprintf("https://%s:%d", ip, testnet.FreePort(t, ip))},
		})
	}
	results := bootstrapAll(t, ctx, func() Source { return ds.v3(t, token) }, []Member{agents[0].self, agents[1].self})

	size, regs, err := ShowToken(ctx, ds.Client, token)
	if err != nil || size != 3 || len(regs) != 3 {
		t.Fatalf("ShowToken = %d, %v, %v; want 3 registrations", size, regs, err)
	}
	checkFormed(t, results, token, regs, 3)
	plainID, err := MemberID(token, plain)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range regs {
		if r.Name == plain.Name {
			found = true
			if r.ID != plainID || r.PeerURL != plain.PeerURL {
				t.Errorf("plain etcd registered %s=%s under key %s; we compute %s", r.Name, r.PeerURL, r.ID, plainID)
			}
		}
	}
	if !found {
		t.Fatalf("plain etcd's registration not found in %v", regs)
	}

	// Start the two agents' members from the Result next to the plain etcd.
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() { startEmbeddedMember(t, a.self, a.clientURL, a.certs, results[i]) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	endpoints := []string{plainClient, agents[0].clientURL, agents[1].clientURL}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: p.clientTLS(agents[0].certs), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ml, err := c.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ml.Members {
		names = append(names, m.Name)
		if m.IsLearner {
			t.Errorf("member %s is a learner", m.Name)
		}
	}
	if len(ml.Members) != 3 {
		t.Fatalf("member list = %v, want 3 members", names)
	}
	if uint64(ml.Members[0].ID) == 0 {
		t.Error("zero member ID")
	}
	for _, m := range ml.Members {
		if m.Name == plain.Name && fmt.Sprintf("%x", m.ID) != plainID {
			t.Errorf("plain etcd runs as member %x, its registration key is %s", m.ID, plainID)
		}
	}
	// Write through one member, read the write back from each of them.
	if _, err := c.Put(ctx, "/interop", token); err != nil {
		t.Fatal(err)
	}
	for _, ep := range endpoints {
		one, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: p.clientTLS(agents[0].certs), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := one.Get(ctx, "/interop")
		one.Close()
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != token {
			t.Errorf("get via %s = %v, %v", ep, resp, err)
		}
		st, err := c.Status(ctx, ep)
		if err != nil || len(st.Errors) > 0 {
			t.Errorf("status of %s: %v %v", ep, err, st)
		}
	}
	t.Logf("cluster formed: %s", strings.Join(names, ", "))
}

// startEmbeddedMember starts an etcd member from a discovery Result the way
// the agent will: InitialCluster from Members, the token as cluster token.
func startEmbeddedMember(t *testing.T, self Member, clientURL, certDir string, res Result) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = self.Name
	cfg.Dir = filepath.Join(t.TempDir(), self.Name+".etcd")
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	peer, _ := url.Parse(self.PeerURL)
	client, _ := url.Parse(clientURL)
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.InitialCluster = res.InitialCluster()
	cfg.InitialClusterToken = res.Token
	cfg.ClusterState = embed.ClusterStateFlagNew
	in := func(f string) string { return filepath.Join(certDir, f) }
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: in(pki.ServerCertFile), KeyFile: in(pki.ServerKeyFile), TrustedCAFile: in(pki.CACertFile), ClientCertAuth: true}
	cfg.PeerTLSInfo = transport.TLSInfo{CertFile: in(pki.PeerCertFile), KeyFile: in(pki.PeerKeyFile), TrustedCAFile: in(pki.CACertFile), ClientCertAuth: true}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Errorf("start member %s: %v", self.Name, err)
		return
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Errorf("member %s: %v", self.Name, err)
	case <-time.After(40 * time.Second):
		t.Errorf("member %s not ready after 40s", self.Name)
	}
}
