package backup_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/s3test"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// takeAt takes a snapshot of the member cli reaches into stores, with the
// taking node's clock set off by skew.
func takeAt(t *testing.T, cli *clientv3.Client, skew time.Duration, stores ...store.Store) backup.Meta {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, _, err := backup.Take(ctx, backup.SaveOptions{
		Client: cli, Dir: t.TempDir(), Cluster: "test_cl", TakenBy: "etcd-test", Reason: "test",
		Now: func() time.Time { return time.Now().Add(skew) },
	}, stores)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLatest: "latest" is the snapshot of the newest cluster generation
// (a recovery's, recorded in the cluster) at the highest revision, whatever
// the clocks of the nodes that took them; and when a store does not answer
// (a real S3 gateway stopped), "latest" fails naming it rather than pick
// silently among the others.
func TestLatest(t *testing.T) {
	net := testnet.Take(t)
	srv := s3test.Start(t, net.IP(1))
	srv.Env(t)
	srv.Bucket(t, "etcd-backups")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s3, err := store.NewS3(ctx, store.S3Config{Bucket: "etcd-backups", Prefix: "prod/test_cl/", Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	local := store.Local{Dir: t.TempDir()}
	both := backup.Sources{Stores: []store.Store{local, s3}}
	latest := func() (string, error) {
		m, err := backup.Fetch(ctx, both, backup.Latest, filepath.Join(t.TempDir(), "latest.db"))
		return m.Name, err
	}
	recoveryRecord := func(cli *clientv3.Client, gen int, replaced string) {
		t.Helper()
		st, err := cli.Status(ctx, cli.Endpoints()[0])
		if err != nil {
			t.Fatal(err)
		}
		rec := fmt.Sprintf(`{"generation":%d,"state":"done","by":"etcd-test","from":"snapshot latest","clusterID":"%016x","replaced":["%s"]}`, gen, st.Header.ClusterId, replaced)
		if _, err := cli.Put(ctx, keys.Recovery, rec); err != nil {
			t.Fatal(err)
		}
	}

	// The lost cluster (generation 0): a snapshot, then a later one
	// taken by a node whose clock is an hour behind.
	_, old := startMember(t, net.IP(2), 30)
	first := takeAt(t, old, 0, local, s3)
	if _, err := old.Put(ctx, "/k/late", "v"); err != nil {
		t.Fatal(err)
	}
	late := takeAt(t, old, -time.Hour, local, s3)
	if got, err := latest(); err != nil || got != late.Name {
		t.Fatalf("latest = %s, %v; want %s (revision %d after %d, taken by a clock an hour behind)", got, err, late.Name, late.Revision, first.Revision)
	}

	// The cluster a recovery made of it (generation 1, as the recovery
	// records it inside the new cluster): fewer revisions, taken by a
	// clock two hours behind, and still the newest.
	_, rec := startMember(t, net.IP(3), 0)
	recoveryRecord(rec, 1, late.ClusterID)
	recovered := takeAt(t, rec, -2*time.Hour, local, s3)
	if recovered.Generation != 1 || late.Generation != 0 {
		t.Fatalf("generations %d (lost cluster), %d (recovered): want 0, 1", late.Generation, recovered.Generation)
	}
	if recovered.Revision >= late.Revision {
		t.Fatalf("test setup: the recovered cluster's revision %d should be below the lost one's %d", recovered.Revision, late.Revision)
	}
	if got, err := latest(); err != nil || got != recovered.Name {
		t.Fatalf("latest = %s, %v; want the recovered cluster's %s (generation 1, revision %d)", got, err, recovered.Name, recovered.Revision)
	}

	// A newer one only in S3, then S3 stops answering: latest names it.
	if _, err := rec.Put(ctx, "/k/s3-only", "v"); err != nil {
		t.Fatal(err)
	}
	takeAt(t, rec, 0, s3)
	srv.Stop()
	got, err := latest()
	if err == nil {
		t.Fatalf("latest = %s with %s down: an older snapshot chosen silently", got, s3.Where())
	}
	t.Logf("latest with S3 down: %v", err)
	for _, want := range []string{s3.Where(), "--allow-partial"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}

	// --allow-partial: the newest among the stores that answered.
	both.AllowPartial = true
	if got, err := latest(); err != nil || got != recovered.Name {
		t.Fatalf("latest with --allow-partial = %s, %v; want %s", got, err, recovered.Name)
	}

	// Two clusters at generation 1 (two recoveries of the same cluster):
	// which is newer is for a person to say.
	_, twin := startMember(t, net.IP(4), 0)
	recoveryRecord(twin, 1, late.ClusterID)
	other := takeAt(t, twin, 0, local)
	got, err = latest()
	if err == nil || !strings.Contains(err.Error(), recovered.Name) || !strings.Contains(err.Error(), other.Name) {
		t.Fatalf("latest with two clusters at generation 1 = %s, %v; want an error naming both", got, err)
	}
	t.Logf("latest with two clusters at generation 1: %v", err)
}
