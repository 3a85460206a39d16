package hashcheck_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// follower is a node whose member is ready but does not lead, and which has
// no client: the job must not compare anything.
type follower struct{ probes int }

func (*follower) Config() *config.Config                  { return &config.Config{} }
func (*follower) Identity() identity.Identity             { return identity.Identity{} }
func (*follower) Logger() *slog.Logger                    { return slog.New(slog.DiscardHandler) }
func (*follower) Now() time.Time                          { return time.Now() }
func (*follower) Recorder() *report.Recorder              { return nil }
func (*follower) Publish()                                {}
func (*follower) SetStatus(report.Phase, string)          {}
func (*follower) Local() *clientv3.Client                 { return nil }
func (*follower) Cluster() (*clientv3.Client, error)      { return nil, nil }
func (*follower) Dial([]string) (*clientv3.Client, error) { return nil, nil }
func (f *follower) Probe(context.Context) health.Health {
	f.probes++
	return health.Health{Ready: true}
}

func TestJobOnlyOnTheLeader(t *testing.T) {
	n := &follower{}
	if err := hashcheck.NewJob(n).Run(context.Background()); err != nil || n.probes != 1 {
		t.Fatalf("Run on a follower: err %v, %d probes", err, n.probes)
	}
}
