package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/etcd-agent/etcd-agent/internal/zapslog"
)

// VerifyOptions configures the throw-away member Verify restores into.
type VerifyOptions struct {
	// Host is the loopback address its listeners use. Zero: 127.0.0.1.
	// They use auto-generated TLS and require client certificates nobody
	// has: only this process reaches the member (in-process client).
	Host string
	// TempDir holds its data dir, removed afterwards; it needs room for a
	// copy of the database. Zero: os.TempDir().
	TempDir string
	// Timeout bounds the whole check. Zero: 5 minutes.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Verified is what a verification found in the restored member.
type Verified struct {
	Revision int64
	KeyCount int64
	HashKV   uint32
	// HashCompared is false when the metadata carries no HashKV to compare
	// (a file from elsewhere) or the source was compacted differently.
	HashCompared bool
	Took         time.Duration
}

// Verify proves that file is a restorable copy of the snapshot m describes:
// its size and sha256 match, etcd restores it, a member starts on it, and
// that member's revision, key count and HashKV at the revision equal what
// the source member reported when the snapshot was taken.
func Verify(ctx context.Context, file string, m Meta, opts VerifyOptions) (Verified, error) {
	start := time.Now()
	if err := CheckFile(file, m); err != nil {
		return Verified{}, fmt.Errorf("verify %s: %w", m.Name, err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	v, err := verifyRestored(ctx, file, m, opts)
	if err != nil {
		return Verified{}, fmt.Errorf("verify %s: %w", m.Name, err)
	}
	v.Took = time.Since(start)
	return v, nil
}

func verifyRestored(ctx context.Context, file string, m Meta, opts VerifyOptions) (Verified, error) {
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	tmp, err := os.MkdirTemp(opts.TempDir, ".tmp-verify-")
	if err != nil {
		return Verified{}, err
	}
	defer os.RemoveAll(tmp)
	peerPort, err := freePort(host)
	if err != nil {
		return Verified{}, err
	}
	clientPort, err := freePort(host)
	if err != nil {
		return Verified{}, err
	}
	peer := url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(peerPort))}
	client := url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(clientPort))}
	const name = "verify"
	dataDir := filepath.Join(tmp, "data")
	if err := Restore(ctx, file, RestoreOptions{
		DataDir: dataDir, Name: name, PeerURL: peer.String(),
		ClusterToken: "verify-" + randomHex(), KeepRevision: true, Logger: lg,
	}); err != nil {
		return Verified{}, err
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, dataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = name + "=" + peer.String()
	cfg.ClientAutoTLS, cfg.PeerAutoTLS = true, true
	cfg.ClientTLSInfo.ClientCertAuth, cfg.PeerTLSInfo.ClientCertAuth = true, true
	cfg.SelfSignedCertValidity = 1
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(lg))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return Verified{}, fmt.Errorf("start a throw-away member on the restored data: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return Verified{}, fmt.Errorf("throw-away member on the restored data failed: %w", err)
	case <-ctx.Done():
		return Verified{}, fmt.Errorf("throw-away member on the restored data not ready: %w", ctx.Err())
	}
	cli := v3client.New(e.Server)
	defer cli.Close()
	return compareRestored(ctx, cli, m)
}

// compareRestored checks the restored member against the metadata.
func compareRestored(ctx context.Context, cli *clientv3.Client, m Meta) (Verified, error) {
	var v Verified
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly(), clientv3.WithSerializable())
	if err != nil {
		return v, fmt.Errorf("read the restored member: %w", err)
	}
	v.Revision = resp.Header.Revision
	if m.Revision != 0 && v.Revision != m.Revision {
		return v, fmt.Errorf("restored revision %d, metadata says %d", v.Revision, m.Revision)
	}
	v.KeyCount = resp.Count
	if m.ClusterID != "" && v.KeyCount != m.KeyCount {
		return v, fmt.Errorf("restored member has %d keys at revision %d, metadata says %d", v.KeyCount, v.Revision, m.KeyCount)
	}
	hash, err := cli.HashKV(ctx, "", v.Revision)
	if err != nil {
		return v, fmt.Errorf("HashKV of the restored member: %w", err)
	}
	v.HashKV = hash.Hash
	if m.ClusterID != "" && hash.CompactRevision == m.CompactRevision {
		v.HashCompared = true
		if hash.Hash != m.HashKV {
			return v, fmt.Errorf("restored HashKV %d at revision %d, metadata says %d: the data differs from the source member's", hash.Hash, v.Revision, m.HashKV)
		}
	}
	return v, nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
