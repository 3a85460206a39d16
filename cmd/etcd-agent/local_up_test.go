package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// lockedBuffer is a bytes.Buffer that local up and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLocalUpNodeLeavesAndComesBack: `etcd-agent leave` on one node of a
// running `local up` stops that node only; the other two go on serving.
// `local up` again brings the node back as a new member.
func TestLocalUpNodeLeavesAndComesBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node local cluster twice")
	}
	b := testnet.Take(t)
	o := localOptions{nodes: 3, dir: t.TempDir(), runtime: "embedded", firstIP: b.Addr(11), discoveryAddr: b.IP(1) + ":23790"}
	start := func() (out *lockedBuffer, stop func()) {
		t.Helper()
		out = &lockedBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- runLocal(ctx, env{stdout: out, stderr: out, lookupEnv: func(string) (string, bool) { return "", false }}, o)
		}()
		stop = func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("local up: %v\n%s", err, out)
				}
			case <-time.After(time.Minute):
				t.Errorf("local up did not stop within a minute:\n%s", out)
			}
		}
		t.Cleanup(cancel)
		waitOutput(t, out, done, "all 3 nodes ready", 3*time.Minute)
		return out, stop
	}
	members := func() map[string]uint64 {
		t.Helper()
		tlsCfg, err := pki.ClientTLS(filepath.Join(o.dir, "node1", "pki"), pki.OperatorCertFile, pki.OperatorKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://" + b.IP(11) + ":2379", "https://" + b.IP(12) + ":2379"},
			TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Put(ctx, "local-up-test", "ok"); err != nil {
			t.Fatalf("put through nodes 1 and 2: %v", err)
		}
		resp, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ms := map[string]uint64{}
		for _, m := range resp.Members {
			ms[m.Name] = m.ID
		}
		return ms
	}

	out, stop := start()
	before := members()
	node3 := "etcd-" + strings.ReplaceAll(b.IP(13), ".", "-")
	if len(before) != 3 || before[node3] == 0 {
		t.Fatalf("members %v, want 3 with %s", before, node3)
	}
	code, stdout, stderr := runCLI(t, nil, "leave", "--config", filepath.Join(o.dir, "node3", "config.yaml"))
	if code != 0 {
		t.Fatalf("leave node3: exit %d\n%s%s", code, stdout, stderr)
	}
	waitOutput(t, out, nil, "the other nodes go on", time.Minute)
	if ms := members(); len(ms) != 2 || ms[node3] != 0 {
		t.Errorf("members after node3 left: %v, want the other two", ms)
	}
	stop()

	out, stop = start()
	defer stop()
	if !strings.Contains(out.String(), "node3 left the cluster") {
		t.Errorf("the second local up does not say node3 comes back:\n%s", out)
	}
	after := members()
	if len(after) != 3 || after[node3] == 0 || after[node3] == before[node3] {
		t.Errorf("members after local up again: %v; want 3 with %s as a new member (was %x)", after, node3, before[node3])
	}
}

// waitOutput waits until out contains want; done (optional) ending first
// fails the test.
func waitOutput(t *testing.T, out *lockedBuffer, done <-chan error, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(out.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("local up ended (%v) before %q:\n%s", err, want, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s:\n%s", want, timeout, out)
		}
	}
}
