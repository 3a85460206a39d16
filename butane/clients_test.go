package butane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

// TestSpecCarriesClients: the spec's clients.route53 reaches every node's
// config.yaml and loads there with the agent's own loader.
func TestSpecCarriesClients(t *testing.T) {
	s := freshCASpec(t)
	s.Clients = SpecClients{Route53: &SpecRoute53{HostedZoneID: "Z0123456789ABCDEFGHIJ", Domain: "etcd.example.com", TTL: "30s"},
		DNSNames: []string{"etcd-lb.example.com"}}
	res, err := Render(s, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	c := parseIgnition(t, res.Ignition)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, fileContents(t, findFile(t, c, AgentConfigPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Source{Path: cfgPath, DefaultImageTag: "v3.7.3", UID: 1001})
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Clients.Route53; r.HostedZoneID != "Z0123456789ABCDEFGHIJ" || r.Domain != "etcd.example.com" || r.TTL.D() != 30*time.Second {
		t.Errorf("clients.route53 in the node's config: %+v", r)
	}
	if n := cfg.Clients.DNSNames; len(n) != 1 || n[0] != "etcd-lb.example.com" {
		t.Errorf("clients.dnsNames in the node's config: %q", n)
	}
	plain, err := agentConfig(freshCASpec(t))
	if err != nil || strings.Contains(string(plain), "clients") {
		t.Errorf("config without clients settings: %v\n%s", err, plain)
	}
}

func TestSpecBadClients(t *testing.T) {
	s := freshCASpec(t)
	s.Clients = SpecClients{Route53: &SpecRoute53{HostedZoneID: "Z0123456789ABCDEFGHIJ", Domain: "etcd.example.com", TTL: "a minute"}}
	_, err := Render(s, Options{DefaultImageTag: "v3.7.3"})
	var cerr *config.Error
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "clients.route53.ttl") {
		t.Fatalf("err = %v, want a config error on clients.route53.ttl", err)
	}
	s.Clients.Route53.TTL = ""
	s.Clients.Route53.Domain = ""
	_, err = Render(s, Options{DefaultImageTag: "v3.7.3"})
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "clients.route53.domain") || !strings.Contains(err.Error(), "fix:") {
		t.Fatalf("err = %v, want a config error on clients.route53.domain with its fix", err)
	}
}
