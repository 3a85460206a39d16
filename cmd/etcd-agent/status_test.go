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

	t.Run("healthy", func(t *testing.T) {
		now := time.Now().UTC()
		if err := agentreport.Write(statusFile, agentreport.NodeReport{PID: os.Getpid(), Version: "test", UpdatedAt: now,
			Phase: agentreport.PhaseHealthy, Message: "healthy, leader x, 3/3 voters", Ready: true, Name: m.Name,
			PrivateIP: m.IP, ClientURL: m.ClientURL, Endpoints: c.Endpoints(), CertDir: c.CertDir}); err != nil {
			t.Fatal(err)
		}
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
