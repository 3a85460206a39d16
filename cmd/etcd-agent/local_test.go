package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLocalNodeConfig: `local up` writes each node's file from the config
// types; what the node loads from it is what local up meant.
func TestLocalNodeConfig(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	type check struct {
		name      string
		got, want any
	}
	for _, o := range []localOptions{
		{nodes: 3, runtime: "embedded", metrics: true},
		{nodes: 5, runtime: "podman", socket: "unix:///run/podman/podman.sock"},
	} {
		t.Run(o.runtime, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node2")
			ip := netip.MustParseAddr("127.0.0.12")
			cfg, err := writeLocalConfig(o, dir, ip, "/l/ca/ca.crt", "/l/ca/ca.key", "https://127.0.0.1:23790", "tok")
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# Written by `etcd-agent local up`") {
				t.Errorf("config file does not start with its header:\n%s", data)
			}
			checks := []check{
				{"cluster.name", cfg.Cluster.Name, "local"},
				{"cluster.size", cfg.Cluster.Size, o.nodes},
				{"cluster.discovery", strings.Join(cfg.Cluster.Discovery.Endpoints, ",") + " " + cfg.Cluster.Discovery.Token, "https://127.0.0.1:23790 tok"},
				{"node.identity", cfg.Node.Identity, "static"},
				{"node.ip", cfg.Node.IP, "127.0.0.12"},
				{"node.dataDir", cfg.Node.DataDir, filepath.Join(dir, "data")},
				{"pki.dir", cfg.PKI.Dir, filepath.Join(dir, "pki")},
				{"pki.caKey", cfg.PKI.CAKey, "/l/ca/ca.key"},
				{"etcd.runtime", cfg.Etcd.Runtime, o.runtime},
				{"etcd.quotaBackendBytes", int64(cfg.Etcd.QuotaBackendBytes), int64(2 << 30)},
				{"agent.statusFile", cfg.Agent.StatusFile, filepath.Join(dir, "status.json")},
				{"agent.healthInterval", cfg.Agent.HealthInterval.D(), 2 * time.Second},
				{"metrics.enabled", cfg.Metrics.Enabled, o.metrics},
			}
			if o.metrics {
				checks = append(checks,
					check{"metrics.address", cfg.Metrics.Address, "127.0.0.12:2382"},
					check{"etcd.extraFlags", strings.Join(cfg.Etcd.ExtraFlags, " "), "--listen-metrics-urls=http://127.0.0.12:2381"})
			}
			if o.runtime == "podman" {
				checks = append(checks,
					check{"podman.containerName", cfg.Podman.ContainerName, "etcd-local-127-0-0-12"},
					check{"podman.socket", cfg.Podman.Socket, o.socket})
			} else if strings.Contains(string(data), "podman:") {
				t.Errorf("an embedded node's file has a podman section:\n%s", data)
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v\nfile:\n%s", c.name, c.got, c.want, data)
				}
			}
		})
	}
}
