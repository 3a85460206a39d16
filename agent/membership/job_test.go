package membership

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/discovery"
)

func TestWatch(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var w Watch
	steps := []struct {
		at      int
		healthy bool
		due     bool
	}{
		{0, false, false}, // unhealthy since 0
		{4, false, false}, // not 5 s yet
		{5, false, true},  // 5 s unhealthy: check
		{7, false, false}, // checked 2 s ago
		{10, false, true}, // 5 s since the last check
		{11, true, false}, // healthy again
		{12, false, false},
		{17, false, true},
	}
	for _, s := range steps {
		if got := w.Observe(s.healthy, at(s.at)); got != s.due {
			t.Fatalf("at %ds (healthy %v): due %v, want %v", s.at, s.healthy, got, s.due)
		}
	}
}

func TestSameStep(t *testing.T) {
	remove := func(id uint64) JoinStep { return JoinStep{Kind: StepRemove, Remove: &Removal{ID: id}} }
	tests := []struct {
		name          string
		before, again JoinStep
		want          bool
	}{
		{"add and add", JoinStep{Kind: StepAdd}, JoinStep{Kind: StepAdd, Reason: "other words"}, true},
		{"add, then standby", JoinStep{Kind: StepAdd}, JoinStep{Kind: StepStandby}, false},
		{"same removal", remove(3), remove(3), true},
		{"another removal", remove(3), remove(4), false},
		{"removal, then add", remove(3), JoinStep{Kind: StepAdd}, false},
	}
	for _, tt := range tests {
		if got := sameStep(tt.before, tt.again); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestUnreachableMessage(t *testing.T) {
	eps := []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}
	if got := unreachableMessage(eps, nil, "rejoin"); got != "cluster formed, no member reachable: waiting to rejoin as a new member (tried https://10.0.0.1:2379,https://10.0.0.2:2379)" {
		t.Errorf("nothing reachable: %q", got)
	}
	if got := unreachableMessage(eps, eps[:1], "join"); got != "cluster formed, no quorum answers (reachable: https://10.0.0.1:2379): waiting to join as a new member" {
		t.Errorf("no quorum: %q", got)
	}
}

// TestJoinPlansAgainAfterTheSnapshot: the join plans to add this node, and
// while the snapshot before the add runs, another learner appears (as if
// another node joined). The plan made before the snapshot is stale: the join
// surveys again, goes standby and adds nothing.
func TestJoinPlansAgainAfterTheSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	c := statustest.Start(t, "127.0.12.91", "127.0.12.92")
	n := newFakeNode(t, c.CertDir, "127.0.12.93", 3)
	other := "https://127.0.12.94:2380"
	n.snapshot = func(ctx context.Context, cli *clientv3.Client) {
		if err := cluster.AddLearner(ctx, cli, other, func(string) {}); err != nil {
			t.Errorf("add the other learner: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := cluster.Dial(c.CertDir, c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	j := NewJob(n, Options{})
	d, done, err := j.joinOnce(ctx, cli, discovery.Result{Token: "t"}, map[uint64]Outage{})
	if err != nil || done {
		t.Fatalf("joinOnce = %+v, done %v, %v; want standby", d, done, err)
	}
	if got := n.rec.Snapshot(); got.Phase != report.PhaseStandby || !strings.Contains(got.Message, "one membership change at a time") {
		t.Errorf("phase %s %q, want standby for the other learner", got.Phase, got.Message)
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, j.self().PeerURL) {
			t.Fatalf("this node was added on the plan made before the snapshot: %v", list.Members)
		}
	}
	if n.snapshots != 1 {
		t.Errorf("%d snapshots, want 1", n.snapshots)
	}
}

// fakeNode is a Node with a real cluster behind its clients.
type fakeNode struct {
	cfg      *config.Config
	id       identity.Identity
	rec      *report.Recorder
	snapshot func(context.Context, *clientv3.Client)

	mu        sync.Mutex
	snapshots int
}

func newFakeNode(t *testing.T, certDir, ip string, size int) *fakeNode {
	cfg := &config.Config{}
	cfg.Cluster.Size = size
	cfg.Cluster.DeadMemberGrace = config.Duration(time.Minute)
	cfg.Node.DataDir = t.TempDir() + "/data"
	cfg.Etcd.ClientPort, cfg.Etcd.PeerPort = 2379, 2380
	cfg.PKI.Dir = certDir
	addr := netip.MustParseAddr(ip)
	return &fakeNode{cfg: cfg, id: identity.Identity{Name: "etcd-" + strings.ReplaceAll(ip, ".", "-"), PrivateIP: addr},
		rec: report.NewRecorder(report.NodeReport{}, nil)}
}

// WithdrawClientRecords implements ClientRecords: no client records here.
func (n *fakeNode) WithdrawClientRecords(context.Context, string, string) (string, error) {
	return "", nil
}

func (n *fakeNode) Config() *config.Config      { return n.cfg }
func (n *fakeNode) Identity() identity.Identity { return n.id }
func (n *fakeNode) Logger() *slog.Logger        { return slog.New(slog.DiscardHandler) }
func (n *fakeNode) Now() time.Time              { return time.Now() }
func (n *fakeNode) Recorder() *report.Recorder  { return n.rec }
func (n *fakeNode) Publish()                    {}
func (n *fakeNode) SetStatus(p report.Phase, msg string) {
	n.rec.SetPhase(p, msg)
}
func (n *fakeNode) Local() *clientv3.Client            { return nil }
func (n *fakeNode) Cluster() (*clientv3.Client, error) { return nil, context.Canceled }
func (n *fakeNode) Dial(eps []string) (*clientv3.Client, error) {
	return cluster.Dial(n.cfg.PKI.Dir, eps)
}
func (n *fakeNode) SnapshotBeforeChange(ctx context.Context, cli *clientv3.Client, _ string) {
	n.mu.Lock()
	n.snapshots++
	n.mu.Unlock()
	if n.snapshot != nil {
		n.snapshot(ctx, cli)
	}
}
func (n *fakeNode) SupersededBeforeRestart(context.Context) *RejoinNeeded { return nil }
func (n *fakeNode) SupersededByRecovery(context.Context, time.Duration, time.Time) (*RejoinNeeded, bool) {
	return nil, false
}
func (n *fakeNode) SupersededByAnswer(context.Context, *clientv3.Client, uint64, time.Time) *RejoinNeeded {
	return nil
}
func (n *fakeNode) Discovery() (discovery.Source, error) { return &discovery.Static{}, nil }
func (n *fakeNode) EtcdRuntime() runtime.Runtime         { return nil }
func (n *fakeNode) StopEtcd(context.Context) error       { return nil }
