package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/etcd-agent/etcd-agent/agent/backup/s3test"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestS3MultipartUpload: a file larger than the part size reaches a real
// S3-compatible server (versitygw) as a multipart upload (a single PutObject
// is refused by S3 above 5 GiB, and the quota can be 8 GiB), each part
// checked on arrival and the stored object's composite sha256 compared with
// the file's; it reads back identical. The part size is forced down to S3's
// minimum so a 12 MiB file takes three parts.
func TestS3MultipartUpload(t *testing.T) {
	srv := s3test.Start(t, testnet.Take(t).IP(1))
	srv.Env(t)
	srv.Bucket(t, "etcd-backups")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := store.NewS3(ctx, store.S3Config{Bucket: "etcd-backups", Prefix: "prod/", Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	const partSize = 5 << 20
	store.SetPartSize(st, partSize)
	data := make([]byte, 2*partSize+2<<20)
	_, _ = rand.Read(data)
	file := filepath.Join(t.TempDir(), "big.db")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.PutFile(ctx, "big.db", file); err != nil {
		t.Fatalf("put: %v\n%s", err, srv.Logs())
	}
	head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String("etcd-backups"), Key: aws.String("prod/big.db"), PartNumber: aws.Int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := aws.ToInt32(head.PartsCount); n != 3 {
		t.Fatalf("stored in %d parts, want 3 (one PutObject fails above 5 GiB)", n)
	}
	back := filepath.Join(t.TempDir(), "back.db")
	if err := st.GetFile(ctx, "big.db", back); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
		t.Fatal("object read back differs from the file")
	}
	// The stored composite sha256 is the one PutFile compared with: the
	// sha256 of the three parts' sha256s, computed here on our own.
	whole, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String("etcd-backups"), Key: aws.String("prod/big.db"), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatal(err)
	}
	var parts []byte
	for off := 0; off < len(data); off += partSize {
		p := sha256.Sum256(data[off:min(off+partSize, len(data))])
		parts = append(parts, p[:]...)
	}
	c := sha256.Sum256(parts)
	want := base64.StdEncoding.EncodeToString(c[:]) + "-3"
	if got := aws.ToString(whole.ChecksumSHA256); got != want || whole.ChecksumType != types.ChecksumTypeComposite {
		t.Errorf("stored checksum %q (%s), want the composite %q", got, whole.ChecksumType, want)
	}
}
