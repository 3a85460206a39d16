package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestEnvWithEtcdctl: what `env` prints, exported, makes the real etcdctl
// (bin/etcdctl, `make etcd-binaries`) list the members of a real TLS member
// with the operator certificate, and etcdctl has nothing to warn about on
// stderr (etcdctl 3.7 warns about ETCDCTL_API, which it no longer reads).
func TestEnvWithEtcdctl(t *testing.T) {
	etcdctl, err := filepath.Abs("../../bin/etcdctl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(etcdctl); err != nil {
		t.Skipf("no etcdctl (make etcd-binaries): %v", err)
	}
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1))
	m := c.Members[0]
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := config.WriteFile(cfgPath, "", &config.Config{
		Cluster: config.Cluster{Discovery: config.Discovery{Static: m.Name + "=" + m.PeerURL}},
		Node:    config.Node{Identity: "static", IP: m.IP},
		PKI:     config.PKI{Dir: c.CertDir},
		Agent:   config.Agent{StatusFile: filepath.Join(dir, "status.json")},
	}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "env", "--config", cfgPath, "--endpoints", m.ClientURL)
	if code != 0 {
		t.Fatalf("env: exit %d: %s", code, errOut)
	}
	cmd := exec.Command(etcdctl, "member", "list")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for line := range strings.Lines(out) {
		kv, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			t.Fatalf("env printed %q, not an export", line)
		}
		cmd.Env = append(cmd.Env, kv) // no quoting needed: the paths are plain
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), m.Name) || stderr.Len() > 0 {
		t.Errorf("etcdctl member list with env's variables: %v, stdout %q, stderr %q; want the member and nothing on stderr\nenv:\n%s", err, stdout.String(), stderr.String(), out)
	}
}
