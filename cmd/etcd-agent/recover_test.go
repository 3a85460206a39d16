package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestRecoverRefusedWhileQuorumAnswers runs `recover` on a node of a real,
// healthy TLS member whose agent is not running: the command checks the
// quorum itself, a linearizable read succeeds, and the recovery is refused
// with exit 3 (refused, nothing changed), not 1 (failed), the message once.
// `fleetlock release` with no slot held is a failure (exit 1) whose line
// names the command once.
func TestRecoverRefusedWhileQuorumAnswers(t *testing.T) {
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1))
	m := c.Members[0]
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := config.WriteFile(cfgPath, "", &config.Config{
		Cluster: config.Cluster{Name: "cli-test", Discovery: config.Discovery{Static: m.Name + "=" + m.PeerURL}},
		Node:    config.Node{Identity: "static", IP: m.IP, DataDir: filepath.Join(dir, "data")},
		PKI:     config.PKI{Dir: c.CertDir},
		Etcd:    config.Etcd{ClientPort: urlPort(t, m.ClientURL)},
		Agent:   config.Agent{StatusFile: filepath.Join(dir, "status.json")},
	}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "recover", "--config", cfgPath, "--from-snapshot", filepath.Join(dir, "some.db"))
	want := "etcd-agent recover: refused: the cluster still has a quorum: a linearizable read through " + m.ClientURL
	if code != exitUnhealthy || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "refused") != 1 {
		t.Errorf("recover with a quorum answering: exit %d, want %d and stderr starting %q\nstdout %s\nstderr %s", code, exitUnhealthy, want, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "fleetlock", "release", "--config", cfgPath)
	if want := "etcd-agent fleetlock release: no reboot slot is held\n"; code != exitFailure || errOut != want {
		t.Errorf("fleetlock release with no slot held: exit %d, stderr %q; want %d, %q\nstdout %s", code, errOut, exitFailure, want, out)
	}
}
