package recovery

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestCheckReplacedReportsASplitCluster: a member runs with data of a
// cluster that a recovery replaced (it restarted while the registry did not
// answer). The running agent finds the registry's record and reports it, once
// an hour, without touching the data.
func TestCheckReplacedReportsASplitCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a discovery service")
	}
	const ip = "127.0.9.98"
	dir := t.TempDir()
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caCert, caKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "certs")
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: certs, NodeIP: netip.MustParseAddr(ip), Validity: time.Hour, RenewBefore: time.Minute, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	readyc, done := make(chan string, 1), make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() {
		done <- discovery.Serve(sctx, discovery.ServeConfig{
			DataDir: filepath.Join(dir, "disc"), ListenClientURL: "https://" + ip + ":2379", ListenPeerURL: "https://" + ip + ":2380",
			CertFile: filepath.Join(certs, pki.ServerCertFile), KeyFile: filepath.Join(certs, pki.ServerKeyFile),
			TrustedCAFile: filepath.Join(certs, pki.CACertFile), ClientCertAuth: true,
		}, func(ep string) { readyc <- ep })
	}()
	t.Cleanup(func() { stop(); <-done })
	var ep string
	select {
	case ep = <-readyc:
	case err := <-done:
		t.Fatal(err)
	}
	tlsCfg, err := pki.ClientTLS(certs, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tlsCfg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	token, err := discovery.NewToken(ctx, cli, 3)
	if err != nil {
		t.Fatal(err)
	}
	disc := &discovery.V3{Endpoints: []string{ep}, Token: token, TLS: tlsCfg}

	// This member's data: a WAL of cluster aaaa.
	dataDir := filepath.Join(dir, "data")
	md, _ := proto.Marshal(&etcdserverpb.Metadata{NodeID: new(uint64(0x1234)), ClusterID: new(uint64(0xaaaa))})
	w, err := wal.Create(zap.NewNop(), filepath.Join(dataDir, "member", "wal"), md)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()

	cfg := &config.Config{}
	cfg.Cluster.Name = "split"
	cfg.Node.DataDir = dataDir
	cfg.Agent.StatusFile = filepath.Join(dir, "status.json")
	n := &fakeNode{cfg: cfg, id: identity.Identity{Name: "etcd-127-0-9-98", PrivateIP: netip.MustParseAddr(ip)}, disc: disc,
		rec: report.NewRecorder(report.NodeReport{}, nil)}
	j := NewJob(n)
	divergence := func() []string {
		var out []string
		for _, d := range n.rec.Snapshot().Decisions {
			if d.Action == report.ActionDivergence {
				out = append(out, d.Reason)
			}
		}
		return out
	}

	_ = j.Run(ctx)
	if d := divergence(); len(d) != 0 {
		t.Fatalf("no recovery recorded, yet reported: %q", d)
	}
	rec := discovery.Recovery{Generation: 1, State: discovery.RecoveryDone, By: "etcd-10-0-1-5", From: "member data",
		Token: "t", ClusterID: "bbbb", Replaced: []string{"aaaa"}, StartedAt: time.Now()}
	if err := disc.SwapRecovery(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	_ = j.Run(ctx)
	_ = j.Run(ctx)
	d := divergence()
	if len(d) != 1 || !strings.Contains(d[0], "cluster aaaa") || !strings.Contains(d[0], "stop this cluster's members") {
		t.Fatalf("divergence decisions %q: want one naming the replaced cluster aaaa and the way out", d)
	}
	if has, err := filepath.Glob(dataDir + ".removed-*"); err != nil || len(has) != 0 {
		t.Errorf("data moved aside while the member serves: %v", has)
	}
	t.Logf("reported: %s", d[0])
}

// fakeNode is the node of a job under test: the methods a test does not set
// up panic (the embedded Node is nil), so a job that reaches for more than
// it should fails loudly.
type fakeNode struct {
	Node
	cfg  *config.Config
	id   identity.Identity
	disc discovery.Source
	rec  *report.Recorder
}

func (f *fakeNode) Config() *config.Config               { return f.cfg }
func (f *fakeNode) Identity() identity.Identity          { return f.id }
func (f *fakeNode) Logger() *slog.Logger                 { return slog.New(slog.DiscardHandler) }
func (f *fakeNode) Now() time.Time                       { return time.Now() }
func (f *fakeNode) Recorder() *report.Recorder           { return f.rec }
func (f *fakeNode) Publish()                             {}
func (f *fakeNode) Discovery() (discovery.Source, error) { return f.disc, nil }
