package dnsrecords_test

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/dnsrecords"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// memStore is a zone in memory that counts its batches and can fail.
type memStore struct {
	mu      sync.Mutex
	sets    []dnsrecords.RecordSet
	batches int
	err     error
}

func (s *memStore) List(context.Context) ([]dnsrecords.RecordSet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sets), s.err
}

func (s *memStore) Apply(_ context.Context, _ string, changes []dnsrecords.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.batches++
	for _, c := range changes {
		s.sets = slices.DeleteFunc(s.sets, func(r dnsrecords.RecordSet) bool { return r.Name == c.Set.Name && r.Type == c.Set.Type })
		if c.Action == dnsrecords.Upsert {
			s.sets = append(s.sets, c.Set)
		}
	}
	return nil
}

func (s *memStore) fail(err error) { s.mu.Lock(); s.err = err; s.mu.Unlock() }

func (s *memStore) state() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.sets {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out, s.batches
}

// jobNode is one agent's node: ready, leading or not, on the shared member.
type jobNode struct {
	name   string
	cfg    *config.Config
	cli    *clientv3.Client
	rec    *report.Recorder
	leader bool
}

func (n *jobNode) Config() *config.Config                  { return n.cfg }
func (n *jobNode) Identity() identity.Identity             { return identity.Identity{Name: n.name} }
func (n *jobNode) Logger() *slog.Logger                    { return slog.New(slog.DiscardHandler) }
func (n *jobNode) Now() time.Time                          { return time.Now() }
func (n *jobNode) Recorder() *report.Recorder              { return n.rec }
func (n *jobNode) Publish()                                {}
func (n *jobNode) SetStatus(report.Phase, string)          {}
func (n *jobNode) Local() *clientv3.Client                 { return n.cli }
func (n *jobNode) Cluster() (*clientv3.Client, error)      { return n.cli, nil }
func (n *jobNode) Dial([]string) (*clientv3.Client, error) { return n.cli, nil }
func (n *jobNode) Probe(context.Context) health.Health {
	return health.Health{Ready: true, Leader: n.leader}
}

// startMember runs a one-member etcd (client URL https://IP:2379) and
// returns an in-process client to it.
func startMember(t *testing.T) (*clientv3.Client, string) {
	t.Helper()
	ip := testnet.Take(t).IP(1)
	cu, _ := url.Parse("https://" + ip + ":2379")
	pu, _ := url.Parse("https://" + ip + ":2380")
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "etcd-a", filepath.Join(t.TempDir(), "data")
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = "etcd-a=" + pu.String()
	cfg.ClientAutoTLS, cfg.PeerAutoTLS = true, true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		t.Fatal("member not ready")
	}
	cli := v3client.New(e.Server)
	t.Cleanup(func() { cli.Close() })
	return cli, ip
}

// TestJobLeaderWritesOthersShow: the leader's agent brings the zone in
// step (one batch, nothing more while in step), waits for the membership
// lock before it writes, and shares a refusal that every agent then shows
// in its report until it clears; another agent never writes.
func TestJobLeaderWritesOthersShow(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the membership lock")
	}
	cli, ip := startMember(t)
	cfg := &config.Config{}
	cfg.Clients.Route53 = config.Route53{HostedZoneID: "Z1", Domain: "etcd.example.com", TTL: config.Duration(time.Minute)}
	store := &memStore{}
	newJob := func(n *jobNode) *dnsrecords.Job {
		return dnsrecords.NewJob(n, func(context.Context) (dnsrecords.Store, error) { return store, nil })
	}
	leaderNode := &jobNode{name: "etcd-a", cfg: cfg, cli: cli, rec: report.NewRecorder(report.NodeReport{}, nil), leader: true}
	otherNode := &jobNode{name: "etcd-b", cfg: cfg, cli: cli, rec: report.NewRecorder(report.NodeReport{}, nil)}
	leader, other := newJob(leaderNode), newJob(otherNode)
	ctx := context.Background()
	want := []string{
		"_etcd-client-ssl._tcp.etcd.example.com. 60 SRV [0 10 2379 etcd-a.etcd.example.com.]",
		"etcd-a.etcd.example.com. 60 A [" + ip + "]",
	}

	// Another agent never writes.
	if err := other.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if sets, batches := store.state(); len(sets) != 0 || batches != 0 {
		t.Fatalf("a non-leader wrote: %v", sets)
	}

	// The leader waits while someone holds the membership lock.
	lock, err := cluster.TakeLock(ctx, cli, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if sets, batches := store.state(); batches != 0 {
		t.Fatalf("the leader wrote while the membership lock was held: %v", sets)
	}
	lock.Release()

	for range 2 {
		if err := leader.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if sets, batches := store.state(); !slices.Equal(sets, want) || batches != 1 {
		t.Fatalf("zone %q after %d batches, want %q after one", sets, batches, want)
	}
	if !slices.ContainsFunc(leaderNode.rec.Snapshot().Decisions, func(d report.Decision) bool { return d.Action == report.ActionDNSRecords }) {
		t.Error("the change is not among the leader's decisions")
	}

	// Route 53 refuses: the leader shares it, the other agent shows it.
	store.fail(&dnsrecords.Error{Kind: problem.DNSAccessDenied, Op: "list", Err: errString("AccessDenied: not authorized")})
	for _, j := range []*dnsrecords.Job{leader, other} {
		if err := j.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, keys.DNSRecords)
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"code":"dns-access-denied"`) {
		t.Fatalf("shared outcome %v (%v), want the refusal", resp.Kvs, err)
	}
	for _, n := range []*jobNode{leaderNode, otherNode} {
		ps := n.rec.Snapshot().Problems
		if len(ps) != 1 || ps[0].Code != problem.DNSAccessDenied.Code || !strings.Contains(ps[0].Text, "found by etcd-a's agent") || ps[0].Fix != problem.DNSAccessDenied.Fix {
			t.Errorf("%s's problems = %+v, want the leader's refusal with its fix", n.name, ps)
		}
	}

	store.fail(nil)
	for _, j := range []*dnsrecords.Job{leader, other} {
		if err := j.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*jobNode{leaderNode, otherNode} {
		if ps := n.rec.Snapshot().Problems; len(ps) != 0 {
			t.Errorf("%s's problems once Route 53 allows again: %+v", n.name, ps)
		}
	}

	// A leave withdraws the member's records.
	changes, err := other.Withdraw(ctx, dnsrecords.Member{Name: "etcd-a", ClientURLs: []string{"https://" + ip + ":2379"}})
	if err != nil || len(changes) != 2 {
		t.Fatalf("Withdraw = %v, %v", changes, err)
	}
	if sets, _ := store.state(); len(sets) != 0 {
		t.Errorf("zone after the withdrawal: %q", sets)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
