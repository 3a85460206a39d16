package main

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestStatusCommand runs `etcd-agent status` as an operator would, against
// a real 3-member TLS cluster: agent stopped, agent healthy, a member down.
func TestStatusCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1), b.IP(2), b.IP(3))
	m := c.Members[0]
	dir := t.TempDir()
	statusFile := filepath.Join(dir, "status.json")
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := config.WriteFile(cfgPath, "", &config.Config{
		Cluster: config.Cluster{Discovery: config.Discovery{Static: m.Name + "=" + m.PeerURL}},
		Node:    config.Node{Identity: "static", IP: m.IP},
		PKI:     config.PKI{Dir: c.CertDir},
		Etcd:    config.Etcd{ClientPort: urlPort(t, m.ClientURL)},
		Agent:   config.Agent{StatusFile: statusFile},
	}); err != nil {
		t.Fatal(err)
	}
	statusJSON := func(t *testing.T) (int, status.View) {
		t.Helper()
		code, out, errOut := runCLI(t, nil, "status", "--config", cfgPath, "--timeout", "5s", "-o", "json")
		var v status.View
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("status -o json (exit %d) does not parse: %v\n%s\n%s", code, err, out, errOut)
		}
		return code, v
	}

	t.Run("agent stopped", func(t *testing.T) {
		code, v := statusJSON(t)
		if code != status.ExitUnhealthy || v.Node.AgentAlive || !strings.Contains(v.Node.AgentState, "no agent report") {
			t.Errorf("exit %d, agent alive %v, state %q", code, v.Node.AgentAlive, v.Node.AgentState)
		}
		if v.Summary.HealthyMembers != 3 || !v.Summary.HasLeader {
			t.Errorf("the cluster is still shown: %+v", v.Summary)
		}
		code, out, _ := runCLI(t, nil, "status", "--config", cfgPath, "--timeout", "5s")
		if code != status.ExitUnhealthy || !strings.Contains(out, "no agent report") || !strings.Contains(out, m.Name) {
			t.Errorf("table (exit %d):\n%s", code, out)
		}
	})

	// healthyReport is what this node's healthy agent publishes.
	healthyReport := func(t *testing.T) {
		t.Helper()
		if err := agentreport.Write(statusFile, agentreport.NodeReport{PID: os.Getpid(), Version: "test", UpdatedAt: time.Now().UTC(),
			Phase: agentreport.PhaseHealthy, Message: "healthy, leader x, 3/3 voters", Ready: true, Name: m.Name,
			PrivateIP: m.IP, ClientURL: m.ClientURL, Endpoints: c.Endpoints(), CertDir: c.CertDir}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("healthy", func(t *testing.T) {
		healthyReport(t)
		code, v := statusJSON(t)
		if code != 0 || len(v.Endpoints) != 3 || !v.Summary.Healthy {
			t.Errorf("exit %d, %d endpoints, summary %+v", code, len(v.Endpoints), v.Summary)
		}
		if h := v.HashKV; h.Mismatch || !strings.HasPrefix(h.Description, "HashKV equal on 3 members at revision ") {
			t.Errorf("hash check %+v, want all 3 equal", h)
		}
		for _, e := range v.Endpoints {
			if e.HashKV == "" || e.HashKV != v.Endpoints[0].HashKV {
				t.Errorf("row %s hash %q, want one hash on every row", e.Endpoint, e.HashKV)
			}
		}
	})

	// 3 healthy voters where the config asks for 5: no failure tolerance
	// beyond 1, so not healthy (the same cluster, another cluster.size).
	t.Run("under-replicated", func(t *testing.T) {
		cfg5 := filepath.Join(dir, "config5.yaml")
		if err := config.WriteFile(cfg5, "", &config.Config{
			Cluster: config.Cluster{Size: 5, Discovery: config.Discovery{Static: m.Name + "=" + m.PeerURL}},
			Node:    config.Node{Identity: "static", IP: m.IP},
			PKI:     config.PKI{Dir: c.CertDir},
			Etcd:    config.Etcd{ClientPort: urlPort(t, m.ClientURL)},
			Agent:   config.Agent{StatusFile: statusFile},
		}); err != nil {
			t.Fatal(err)
		}
		healthyReport(t)
		code, out, errOut := runCLI(t, nil, "status", "--config", cfg5, "--timeout", "5s")
		if code != status.ExitUnhealthy || !strings.Contains(out, "under-replicated: 3 of 5 voters") ||
			!strings.Contains(out, "3 of 5 voters (cluster.size): the cluster tolerates 1 failed member instead of 2 failed members") {
			t.Errorf("exit %d, want %d naming the missing voters:\n%s%s", code, status.ExitUnhealthy, out, errOut)
		}
	})

	t.Run("member down", func(t *testing.T) {
		c.Stop(2)
		code, v := statusJSON(t)
		if code != status.ExitUnhealthy || v.Summary.HealthyMembers != 2 {
			t.Errorf("exit %d, summary %+v", code, v.Summary)
		}
		for _, e := range v.Endpoints {
			if e.Name == c.Members[2].Name && (e.Healthy || e.Error == "") {
				t.Errorf("stopped member's row %+v", e)
			}
		}
	})
}

// urlPort is the port of a URL like https://127.0.0.1:2379.
func urlPort(t *testing.T, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("port of %s: %v", raw, err)
	}
	return p
}

// TestStatusAgentNeverRan: on a node where the agent never ran (no report,
// no operator certificate) status says so as the agent-never-ran problem,
// in the table and in JSON, and exits 3 like any node that is not healthy;
// status itself failing (a certificate it cannot read) stays exit 1.
func TestStatusAgentNeverRan(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := config.WriteFile(cfgPath, "", &config.Config{
		Cluster: config.Cluster{Discovery: config.Discovery{Static: "etcd-10-0-1-5=https://10.0.1.5:2380"}},
		Node:    config.Node{Identity: "static", IP: "10.0.1.5"},
		PKI:     config.PKI{Dir: filepath.Join(dir, "pki")},
		Agent:   config.Agent{StatusFile: filepath.Join(dir, "status.json")},
	}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "status", "--config", cfgPath)
	if code != status.ExitUnhealthy || !strings.Contains(out, "the agent never ran on this node") ||
		!strings.Contains(out, "Cluster  not asked: ") || !strings.Contains(out, "systemctl start etcd-agent") {
		t.Errorf("table: exit %d, want %d naming the problem and its fix:\n%s%s", code, status.ExitUnhealthy, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "status", "--config", cfgPath, "-o", "json")
	var v status.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("-o json (exit %d) does not parse: %v\n%s%s", code, err, out, errOut)
	}
	if code != status.ExitUnhealthy || len(v.Summary.Problems) != 1 || v.Summary.Problems[0].Code != "agent-never-ran" || v.Summary.NotAsked == "" {
		t.Errorf("json: exit %d, summary %+v", code, v.Summary)
	}

	// The certificate exists but is not a certificate: status cannot ask
	// the cluster, and that is its own failure (exit 1), not the node's.
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "operator.crt", "operator.key"} {
		if err := os.WriteFile(filepath.Join(dir, "pki", f), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errOut := runCLI(t, nil, "status", "--config", cfgPath); code != 1 || !strings.Contains(errOut, "operator certificate") {
		t.Errorf("unreadable certificate: exit %d, want 1:\n%s", code, errOut)
	}
}
