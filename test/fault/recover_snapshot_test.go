package fault_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/s3test"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestRecoverFromSnapshotS3: the agents keep scheduled snapshots in S3 (a
// real versitygw process). All three nodes are lost for good; three fresh
// instances (new IPs, empty disks) boot and wait, since the registry says the
// cluster formed and nobody answers. `etcd-agent recover --from-snapshot
// latest` on one of them restores the newest snapshot from S3 into a new
// cluster; the other two join it. Before that, with S3 stopped and an older
// snapshot in that node's own dir, the same command is refused naming S3
// (it used to restore the older one silently). Every write acknowledged before the
// snapshot is there, the history is linearizable, the revision is above the
// snapshot's, and a writer works on the new cluster.
func TestRecoverFromSnapshotS3(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	srv := s3test.Start(t, c.ip(9))
	const bucket = "etcd-recover-test"
	srv.Bucket(t, bucket)
	awsDir := t.TempDir()
	c.env = []string{
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(awsDir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(awsDir, "credentials"),
		// No IMDS: a closed port in this test's block.
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://" + c.ip(8) + ":1",
	}
	c.configure = func(cfg *config.Config) {
		cfg.Backup.Interval = config.Duration(3 * time.Second)
		cfg.Backup.S3 = config.BackupS3{Bucket: bucket, Endpoint: srv.Endpoint}
	}
	c.useV3Discovery(3)
	n := c.form(3)
	cli := c.client(1, 2, 3)
	c.waitMembers(cli, time.Minute, 1, 2, 3)
	oldID := clusterID(t, cli)
	w := lintest.Start(t, cli, 2)
	// An early snapshot, kept aside: later, a copy an operator left on
	// the node that recovers.
	waitSnapshot(t, srv, bucket, 1)
	older, olderDir := keepOldestSnapshot(t, srv, bucket)
	waitAcked(t, w, 40)
	put(t, cli, keyK, "v1")
	// The recovery point: writes stop, and a scheduled snapshot at or
	// above the last acknowledged revision reaches S3.
	w.Stop()
	last := currentRevision(t, cli)
	meta := waitSnapshot(t, srv, bucket, last)
	t.Logf("snapshot %s in S3 at revision %d (last acknowledged write at revision %d)", meta.Name, meta.Revision, last)

	for i := 1; i <= 3; i++ {
		n[i].kill()
		n[i].wipe()
	}
	// Scheduled snapshots went on until the kill: the newest is what
	// `latest` must restore.
	meta = waitSnapshot(t, srv, bucket, last)
	t.Logf("all three nodes lost for good; the newest snapshot is %s (revision %d)", meta.Name, meta.Revision)

	fresh := []*node{c.node(4), c.node(5), c.node(6)}
	for _, nd := range fresh {
		nd.start()
	}
	time.Sleep(3 * time.Second)
	for _, nd := range fresh {
		if r, ok := nd.current(); ok && r.Ready {
			t.Fatalf("node %d is ready before the recovery: %s", nd.i, nd.describe())
		}
	}

	// A fresh node has no member data to recover from.
	noData := c.spawn("recover-nodata-node5", c.env, nil, "recover", "--config", fresh[1].configPath, "--from-member")
	if code, err := noData.wait(time.Minute); err != nil || code != exitRefused || !strings.Contains(noData.tail(5), "holds no etcd member") {
		t.Fatalf("recover --from-member on a node without data: exit %d, %v, want exit 3 and a refusal:\n%s", code, err, noData.tail(20))
	}

	// S3 stops answering while node 4 holds an older snapshot in its own
	// dir (a copy of the first one, as an operator may have left there):
	// `latest` must not restore it silently. The recover fails naming the
	// store; S3 back, it restores the newest.
	if older.Revision >= meta.Revision {
		t.Fatalf("the early snapshot %s is not older than the newest %s", older.Name, meta.Name)
	}
	copySnapshot(t, olderDir, filepath.Join(filepath.Dir(fresh[0].dataDir), "snapshots"), older.Name)
	srv.Stop()
	down := c.spawn("recover-s3down-node4", c.env, nil, "recover", "--config", fresh[0].configPath, "--from-snapshot", "latest")
	code, err := down.wait(recoverTimeout)
	if err != nil || code != exitRefused || !strings.Contains(down.tail(20), "s3://"+bucket) {
		t.Fatalf("recover --from-snapshot latest with S3 down and an older snapshot %s (revision %d) on the node: exit %d, %v; want exit 3 and a refusal naming s3://%s:\n%s",
			older.Name, older.Revision, code, err, bucket, down.tail(20))
	}
	t.Logf("recover --from-snapshot latest with S3 down: exit %d:\n%s", code, down.tail(5))
	srv.Restart(t)

	start := time.Now()
	out := runRecover(t, c, fresh[0], "--from-snapshot", "latest")
	recovered := time.Since(start)
	cli.SetEndpoints(c.endpoints(4, 5, 6)...)
	c.waitMembers(cli, joinTimeout, 4, 5, 6)
	t.Logf("FIGURE recover --from-snapshot latest (S3): new cluster healthy after %s; 3 healthy voters after %s (from the recover command's start)",
		recovered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, meta.Name) {
		t.Errorf("recover did not restore the newest snapshot %s:\n%s", meta.Name, out)
	}

	w.Verify(t, cli)
	if v, found, err := getValue(cli, keyK, 10*time.Second); err != nil || !found || v != "v1" {
		t.Fatalf("get %s = %q (found %v, err %v), want v1", keyK, v, found, err)
	}
	checkNewCluster(t, cli, oldID)
	if rev := currentRevision(t, cli); rev <= meta.Revision {
		t.Errorf("revision %d after the restore, not above the snapshot's %d", rev, meta.Revision)
	}
	// The new cluster takes writes: a second writer, the same proof.
	w2 := lintest.Start(t, cli, 2)
	waitAcked(t, w2, 40)
	c.proof(w2, cli, 4, 5, 6)
}

// keepOldestSnapshot copies the oldest snapshot in the bucket (objects on
// the gateway's disk) into a temporary dir and returns its metadata and the
// dir.
func keepOldestSnapshot(t *testing.T, srv *s3test.Server, bucket string) (backup.Meta, string) {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(srv.Root, bucket, "*", "*"+backup.MetaSuffix))
	if err != nil || len(metas) == 0 {
		t.Fatalf("no snapshot metadata in the bucket's directory: %v", err)
	}
	var oldest backup.Meta
	var from string
	for _, f := range metas {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := backup.ParseMeta(b, f); err == nil && (from == "" || m.Revision < oldest.Revision) {
			oldest, from = m, f
		}
	}
	dir := t.TempDir()
	copySnapshot(t, filepath.Dir(from), dir, oldest.Name)
	return oldest, dir
}

// copySnapshot copies snapshot name's two files from one dir to another.
func copySnapshot(t *testing.T, from, to, name string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{backup.SnapshotSuffix, backup.MetaSuffix} {
		b, err := os.ReadFile(filepath.Join(from, name+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// currentRevision is the cluster's revision, read linearizably.
func currentRevision(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, keyK)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.GetRevision()
}

// waitSnapshot waits until the bucket holds a snapshot (its metadata
// written beside it) at revision atLeast or above, and returns its metadata.
func waitSnapshot(t *testing.T, srv *s3test.Server, bucket string, atLeast int64) backup.Meta {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var best backup.Meta
		out, err := srv.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err == nil {
			for _, o := range out.Contents {
				key := aws.ToString(o.Key)
				if !strings.HasSuffix(key, ".meta.json") {
					continue
				}
				obj, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(obj.Body)
				obj.Body.Close()
				if m, err := backup.ParseMeta(b, key); err == nil && m.Revision >= best.Revision {
					best = m
				}
			}
		}
		cancel()
		if best.Revision >= atLeast {
			return best
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot at revision %d or above in s3://%s after 2 minutes (newest: %+v, list error %v)", atLeast, bucket, best, err)
		}
		time.Sleep(time.Second)
	}
}
