package backup_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// restoredRevision starts a member on a restored data dir and returns its
// revision and whether revision 1 is compacted (as etcd's recovery needs).
func restoredRevision(t *testing.T, dataDir, name, peer string) (rev, compactedTo int64) {
	t.Helper()
	pu, _ := url.Parse(peer)
	cu, _ := url.Parse("https://" + testHost + ":23902")
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, dataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = name + "=" + peer
	cfg.ClientAutoTLS, cfg.PeerAutoTLS = true, true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		t.Fatal("restored member not ready")
	}
	cli := v3client.New(e.Server)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/k/0001")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("restored member: get /k/0001: %v %v", resp, err)
	}
	_, err = cli.Get(ctx, "/k/0001", clientv3.WithRev(resp.Header.Revision-1))
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		compactedTo = resp.Header.Revision - 1
	case err != nil:
		t.Fatal(err)
	}
	return resp.Header.Revision, compactedTo
}
