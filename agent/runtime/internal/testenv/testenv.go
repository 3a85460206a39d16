// Package testenv sets up what the runtime tests need: real certificates from
// the pki package, free ports on loopback addresses, a TLS etcd client, and
// the Podman sockets the CI prepares with .ci/podman-setup.sh.
package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Socket is one Podman API socket to test against.
type Socket struct {
	Name string // "rootful" or "rootless"
	URI  string
	// User owns the rootless service; files the container writes must be
	// this user's. Empty for rootful.
	User string
}

const setupHint = "run .ci/podman-setup.sh as root and export what it prints"

// PodmanSockets returns the rootful and rootless sockets from
// ETCD_AGENT_TEST_PODMAN_SOCKET, ETCD_AGENT_TEST_PODMAN_ROOTLESS_SOCKET and
// ETCD_AGENT_TEST_PODMAN_ROOTLESS_USER. Unset: skipped under -short, a test
// failure otherwise (CI sets them).
func PodmanSockets(t *testing.T) []Socket {
	t.Helper()
	rootful := os.Getenv("ETCD_AGENT_TEST_PODMAN_SOCKET")
	rootless := os.Getenv("ETCD_AGENT_TEST_PODMAN_ROOTLESS_SOCKET")
	usr := os.Getenv("ETCD_AGENT_TEST_PODMAN_ROOTLESS_USER")
	if rootful == "" || rootless == "" || usr == "" {
		if testing.Short() {
			t.Skip("Podman test sockets not set: " + setupHint)
		}
		t.Fatal("ETCD_AGENT_TEST_PODMAN_SOCKET, ETCD_AGENT_TEST_PODMAN_ROOTLESS_SOCKET and ETCD_AGENT_TEST_PODMAN_ROOTLESS_USER must be set: " + setupHint)
	}
	return []Socket{{Name: "rootful", URI: rootful}, {Name: "rootless", URI: rootless, User: usr}}
}

// SkipShort skips a test that needs real containers under -short.
func SkipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("Podman tests need -short off")
	}
}

// Image is the etcd image the tests run: ETCD_AGENT_TEST_IMAGE, or
// gcr.io/etcd-development/etcd:<etcd server module version>.
func Image(t *testing.T) string {
	t.Helper()
	if img := os.Getenv("ETCD_AGENT_TEST_IMAGE"); img != "" {
		return img
	}
	// The server module pins api/v3 to the same version.
	return "gcr.io/etcd-development/etcd:v" + version.Version
}

// Member is a single-node member's spec with its certificates in place.
type Member struct {
	Spec etcdconf.Spec
}

// NewMember prepares a single-node cluster member on ip with free ports, a
// fresh data dir and certificates. When owner is not empty, the dirs are
// given to that user (the rootless container runs as them).
func NewMember(t testing.TB, name string, ip netip.Addr, owner string) Member {
	t.Helper()
	base := t.TempDir()
	// Let another user reach the dirs below (t.TempDir's parents are 0700).
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	caDir, certDir, dataDir := filepath.Join(base, "ca"), filepath.Join(base, "pki"), filepath.Join(base, "data")
	for _, d := range []string{caDir, dataDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	certPath, keyPath, err := pki.InitCA(caDir, pki.CAOptions{Validity: 48 * time.Hour}, now)
	if err != nil {
		t.Fatalf("init CA: %v", err)
	}
	ca, err := pki.LoadCA(certPath, keyPath, now)
	if err != nil {
		t.Fatalf("load CA: %v", err)
	}
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{
		Dir: certDir, NodeIP: ip, Hostname: "localhost",
		Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: now,
	}); err != nil {
		t.Fatalf("issue node certs: %v", err)
	}
	client, peer := testnet.FreePort(t, ip.String()), testnet.FreePort(t, ip.String())
	spec := etcdconf.Spec{
		Name: name, DataDir: dataDir, NodeIP: ip, CertDir: certDir,
		ClientPort: client, PeerPort: peer,
		InitialCluster:      fmt.Sprintf("%s=https://%s", name, netip.AddrPortFrom(ip, uint16(peer))),
		InitialClusterState: "new", InitialClusterToken: "test-" + name,
		HeartbeatMs: 50, ElectionMs: 500,
	}
	if owner != "" {
		Chown(t, owner, certDir, dataDir)
	}
	return Member{Spec: spec}
}

// Chown gives the trees to user (recursively).
func Chown(t testing.TB, owner string, paths ...string) {
	t.Helper()
	u, err := user.Lookup(owner)
	if err != nil {
		t.Fatalf("look up user %s: %v", owner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			t.Fatalf("chown %s to %s: %v", p, owner, err)
		}
	}
}

// Client is a TLS etcd client for the member, with the agent's client cert.
func (m Member) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	tlsCfg, err := pki.ClientTLS(m.Spec.CertDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatalf("client TLS: %v", err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{m.Spec.ClientURL()}, TLS: tlsCfg,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Put writes key=value, retrying until deadline (etcd may still be starting).
func (m Member) Put(t *testing.T, c *clientv3.Client, key, value string, within time.Duration) {
	t.Helper()
	Eventually(t, within, func(ctx context.Context) error {
		_, err := c.Put(ctx, key, value)
		return err
	})
}

// Get reads key and checks it is value, retrying until deadline.
func (m Member) Get(t *testing.T, c *clientv3.Client, key, value string, within time.Duration) {
	t.Helper()
	Eventually(t, within, func(ctx context.Context) error {
		resp, err := c.Get(ctx, key)
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != value {
			return fmt.Errorf("get %s = %v, want %q", key, resp.Kvs, value)
		}
		return nil
	})
}

// Eventually retries f (each try bounded to 3s) until it succeeds or within passes.
func Eventually(t *testing.T, within time.Duration, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
