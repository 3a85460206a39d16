package statustest

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/pki"
)

// ProcessCluster is a test cluster of real etcd processes (bin/etcd), each
// started with the command line etcd-agent gives its members
// (etcdconf.Spec.Flags), so a test can freeze one with SIGSTOP.
type ProcessCluster struct {
	Members []*Member
	// CertDir is the first member's cert dir (the operator pair for status).
	CertDir string
	procs   []*exec.Cmd
}

// EtcdBinary is bin/etcd at the module root, or ETCD_AGENT_TEST_ETCD.
func EtcdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ETCD_AGENT_TEST_ETCD"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/etcd-agent/etcd-agent\n") {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot find the etcd-agent module root above the working directory")
		}
		dir = parent
	}
	bin := filepath.Join(dir, "bin", "etcd")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make etcd-binaries` (or set ETCD_AGENT_TEST_ETCD)", bin)
	}
	return bin
}

// StartProcesses runs one etcd process per IP as a new cluster and waits
// until each serves a linearizable read. The processes are killed at test
// cleanup (thawed first if frozen).
func StartProcesses(t testing.TB, etcdBin string, ips ...string) *ProcessCluster {
	t.Helper()
	members, initial, token := newMembers(t, ips)
	c := &ProcessCluster{Members: members, CertDir: members[0].CertDir}
	t.Cleanup(c.close)
	for _, m := range members {
		cu, _ := url.Parse(m.ClientURL)
		pu, _ := url.Parse(m.PeerURL)
		cport, _ := strconv.Atoi(cu.Port())
		pport, _ := strconv.Atoi(pu.Port())
		spec := etcdconf.Spec{Name: m.Name, DataDir: m.DataDir, NodeIP: netip.MustParseAddr(m.IP), ClientPort: cport, PeerPort: pport,
			CertDir: m.CertDir, InitialCluster: initial, InitialClusterToken: token, QuotaBackendBytes: QuotaBytes}
		if err := spec.Validate(); err != nil {
			t.Fatalf("member %s: %v", m.Name, err)
		}
		logf, err := os.Create(filepath.Join(filepath.Dir(m.DataDir), m.Name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(etcdBin, spec.Flags()...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start etcd member %s: %v", m.Name, err)
		}
		go func() { _ = cmd.Wait(); logf.Close() }()
		c.procs = append(c.procs, cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for i := range members {
		if err := c.waitLinearizable(ctx, t, i); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// waitLinearizable waits until member i answers a linearizable read.
func (c *ProcessCluster) waitLinearizable(ctx context.Context, t testing.TB, i int) error {
	tlsCfg, err := pki.ClientTLS(c.CertDir, pki.OperatorCertFile, pki.OperatorKeyFile)
	if err != nil {
		return fmt.Errorf("load operator TLS: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[i].ClientURL}, TLS: tlsCfg, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("client for %s: %w", c.Members[i].Name, err)
	}
	defer cli.Close()
	for {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(qctx, "health")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd member %s not serving within %s: %w (log: %s)", c.Members[i].Name, readyTimeout, err,
				filepath.Join(filepath.Dir(c.Members[i].DataDir), c.Members[i].Name+".log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitLinearizable waits until member i serves a linearizable read.
func (c *ProcessCluster) WaitLinearizable(ctx context.Context, t testing.TB, i int) error {
	return c.waitLinearizable(ctx, t, i)
}

// Freeze stops member i's process (SIGSTOP): its sockets still accept TCP
// connections in the kernel, but nothing answers.
func (c *ProcessCluster) Freeze(i int) error {
	if err := c.procs[i].Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("freeze %s: %w", c.Members[i].Name, err)
	}
	return nil
}

// Thaw resumes a frozen member (SIGCONT).
func (c *ProcessCluster) Thaw(i int) error {
	if err := c.procs[i].Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("thaw %s: %w", c.Members[i].Name, err)
	}
	return nil
}

// Endpoints are the client URLs of all members.
func (c *ProcessCluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

func (c *ProcessCluster) close() {
	for _, p := range c.procs {
		_ = p.Process.Signal(syscall.SIGCONT)
		_ = p.Process.Kill()
	}
}
