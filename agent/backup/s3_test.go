package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/retention"
	"github.com/etcd-agent/etcd-agent/agent/backup/s3test"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
)

// TestS3UploadListRetentionVerify runs against a real S3-compatible server
// process (versitygw, posix backend): snapshots uploaded with their checksum
// checked, listed, fetched back as latest and verified; retention deletes
// what the policy drops; and an object corrupted in the bucket is refused.
func TestS3UploadListRetentionVerify(t *testing.T) {
	srv := s3test.Start(t, "127.0.8.20")
	srv.Env(t)
	srv.Bucket(t, "etcd-backups")
	_, cli := startMember(t, "127.0.8.12", 50)
	ctx := context.Background()
	st, err := store.NewS3(ctx, store.S3Config{Bucket: "etcd-backups", Prefix: "prod/test_cl/", Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}

	var metas []backup.Meta
	for i := range 3 {
		if _, err := cli.Put(ctx, "/round", string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
		m, where, err := backup.Take(ctx, backup.SaveOptions{Client: cli, Dir: t.TempDir(), Cluster: "test_cl", TakenBy: "etcd-test", Reason: "test"}, []store.Store{st})
		if err != nil {
			t.Fatalf("take: %v\n%s", err, srv.Logs())
		}
		if len(where) != 1 || where[0] != "s3://etcd-backups/prod/test_cl" {
			t.Fatalf("stored in %v", where)
		}
		metas = append(metas, m)
		time.Sleep(5 * time.Millisecond) // distinct names (millisecond times)
	}
	// The objects are where the key layout says, on the server's disk.
	if _, err := os.Stat(filepath.Join(srv.Root, "etcd-backups", "prod", "test_cl", metas[0].Name+backup.SnapshotSuffix)); err != nil {
		t.Fatalf("object not in the bucket: %v", err)
	}
	names, err := backup.List(ctx, st)
	if err != nil || len(names) != 3 || names[2] != metas[2].Name {
		t.Fatalf("list = %v, %v", names, err)
	}

	dst := filepath.Join(t.TempDir(), "latest.db")
	m, err := backup.Fetch(ctx, backup.Sources{Stores: []store.Store{st}}, backup.Latest, dst)
	if err != nil || m.Name != metas[2].Name {
		t.Fatalf("fetch latest = %s, %v", m.Name, err)
	}
	if _, err := backup.Verify(ctx, dst, m, backup.VerifyOptions{Host: testHost, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	// By reference, as `recover --from-snapshot s3://…` passes it.
	ref := "s3://etcd-backups/prod/test_cl/" + metas[1].Name + backup.SnapshotSuffix
	if m, err := backup.Fetch(ctx, backup.Sources{S3: store.S3Config{Endpoint: srv.Endpoint}}, ref, dst); err != nil || m.Name != metas[1].Name {
		t.Fatalf("fetch %s = %s, %v", ref, m.Name, err)
	}

	// Retention: hourly 1 keeps only the newest of this hour.
	deleted, err := backup.Prune(ctx, st, retention.Policy{Hourly: 1, Daily: -1, Weekly: -1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	names, _ = backup.List(ctx, st)
	if len(deleted) != 2 || len(names) != 1 || names[0] != metas[2].Name {
		t.Fatalf("pruned %v, left %v", deleted, names)
	}
	keys, _ := st.List(ctx)
	if len(keys) != 2 {
		t.Fatalf("objects left after pruning: %v", keys)
	}

	// Corrupt the object behind the store's back: Fetch and Verify refuse it.
	obj := filepath.Join(srv.Root, "etcd-backups", "prod", "test_cl", metas[2].Name+backup.SnapshotSuffix)
	corruptByte(t, obj, 4096+100)
	_, err = backup.Fetch(ctx, backup.Sources{Stores: []store.Store{st}}, backup.Latest, dst)
	if err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("fetch of a corrupted object: %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("a refused snapshot was left at %s", dst)
	}
}

// corruptByte flips one byte of a file in place.
func corruptByte(t *testing.T, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestS3BadInput: each S3 fault is an error that names the cause and the
// fix, and leaves nothing behind.
func TestS3BadInput(t *testing.T) {
	srv := s3test.Start(t, "127.0.8.21")
	srv.Bucket(t, "etcd-backups")
	_, cli := startMember(t, "127.0.8.13", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	take := func(cfg store.S3Config) error {
		st, err := store.NewS3(ctx, cfg)
		if err != nil {
			return err
		}
		_, _, err = backup.Take(ctx, backup.SaveOptions{Client: cli, Dir: t.TempDir(), Cluster: "c", TakenBy: "t"}, []store.Store{st})
		return err
	}
	// A port nothing listens on, in this test's loopback block.
	closed := "http://127.0.8.22:9"
	cases := []struct {
		name  string
		env   func(t *testing.T)
		cfg   store.S3Config
		wants []string
	}{
		{"wrong bucket", srv.Env, store.S3Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint}, []string{`bucket "no-such-bucket" does not exist`, "backup.s3.bucket"}},
		{"no credentials", s3test.NoAWSEnv, store.S3Config{Bucket: "etcd-backups", Endpoint: srv.Endpoint}, []string{"no AWS credentials", "instance profile"}},
		{"wrong credentials", func(t *testing.T) {
			srv.Env(t)
			t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		}, store.S3Config{Bucket: "etcd-backups", Endpoint: srv.Endpoint}, []string{"refused", "policy"}},
		{"S3 unreachable", srv.Env, store.S3Config{Bucket: "etcd-backups", Endpoint: closed}, []string{closed + " unreachable", "backup.s3.endpoint"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.env(t)
			err := take(c.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", err)
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
