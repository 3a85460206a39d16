package testcluster

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestNodeConfig: a node file written from NodeConfig loads back as node i
// of the env: its address in the env's block, its own directories, the
// env's CA, discovery, grace and runtime.
func TestNodeConfig(t *testing.T) {
	type check struct {
		name      string
		got, want any
	}
	for _, podman := range []bool{false, true} {
		e := New(t, "unit")
		e.Discovery = e.StaticDiscovery(1, 2, 3)
		if podman {
			e.PodmanSocket = "unix:///run/podman/podman.sock"
		}
		path, cfg := e.WriteConfig(2, e.NodeConfig(2, 3))
		checks := []check{
			{"node.ip", cfg.Node.IP, e.IP(2)},
			{"member name", e.MemberName(2), "etcd-" + strings.ReplaceAll(e.IP(2), ".", "-")},
			{"static founders", cfg.Cluster.Discovery.Static, e.MemberName(1) + "=" + e.PeerURL(1) + "," + e.MemberName(2) + "=" + e.PeerURL(2) + "," + e.MemberName(3) + "=" + e.PeerURL(3)},
			{"cluster.size", cfg.Cluster.Size, 3},
			{"cluster.deadMemberGrace", cfg.Cluster.DeadMemberGrace.D(), 3 * time.Second},
			{"pki.caCert", cfg.PKI.CACert, e.CACert},
			{"node.dataDir", strings.HasPrefix(cfg.Node.DataDir, e.NodeDir(2)+"/"), true},
			{"agent.statusFile", strings.HasPrefix(cfg.Agent.StatusFile, e.NodeDir(2)+"/"), true},
			{"backup.disabled", cfg.Backup.Disabled, true},
			{"etcd.runtime", cfg.Etcd.Runtime, map[bool]string{false: "embedded", true: "podman"}[podman]},
		}
		if podman {
			checks = append(checks, check{"podman.containerName", cfg.Podman.ContainerName, "etcd-agent-unit-" + strings.ReplaceAll(e.IP(2), ".", "-")})
		}
		for _, c := range checks {
			if c.got != c.want {
				data, _ := os.ReadFile(path)
				t.Errorf("podman %v: %s = %v, want %v\n%s", podman, c.name, c.got, c.want, data)
			}
		}
		if a := e.Addr(2); a.As4()[1] != 100 || a == e.Addr(0) {
			t.Errorf("node 2 at %s, the test at %s: want distinct addresses in the env's block %s", a, e.Addr(0), e.Net)
		}
	}
}
