package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRoute53OffByDefault(t *testing.T) {
	cfg, _, err := load(t, minimal, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clients.Route53.Enabled() || cfg.Clients.Route53.TTL != 0 || len(cfg.ClientDNSNames("etcd-10-0-1-5")) != 0 {
		t.Errorf("clients.route53 = %+v, want off", cfg.Clients.Route53)
	}
}

func TestRoute53Accepted(t *testing.T) {
	cfg, warnings, err := load(t, minimal+`clients:
  route53:
    hostedZoneID: /hostedzone/Z0123456789ABCDEFGHIJ
    domain: Etcd.Example.com.
`, nil, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err = %v, warnings = %v", err, warnings)
	}
	r := cfg.Clients.Route53
	if r.HostedZoneID != "Z0123456789ABCDEFGHIJ" || r.Domain != "etcd.example.com" || r.TTL.D() != time.Minute {
		t.Errorf("clients.route53 = %+v", r)
	}
	if got, want := cfg.ClientDNSNames("etcd-10-0-1-5"), []string{"etcd-10-0-1-5.etcd.example.com", "etcd.example.com"}; !slices.Equal(got, want) {
		t.Errorf("ClientDNSNames = %v, want %v", got, want)
	}
	cfg.Clients.DNSNames = []string{"etcd-lb.example.com"}
	if got, want := cfg.ClientDNSNames("etcd-10-0-1-5"), []string{"etcd-lb.example.com", "etcd-10-0-1-5.etcd.example.com", "etcd.example.com"}; !slices.Equal(got, want) {
		t.Errorf("ClientDNSNames with dnsNames = %v, want %v", got, want)
	}
	if got := MemberRecordName("Node_1.a", "etcd.example.com"); got != "node-1-a.etcd.example.com" {
		t.Errorf("MemberRecordName = %q", got)
	}
}

func TestRoute53BadFields(t *testing.T) {
	zone := "hostedZoneID: Z0123456789ABCDEFGHIJ, "
	cases := []struct{ name, yaml, field, value, fix string }{
		{"domain without zone", "clients:\n  route53: {domain: etcd.example.com}\n", "clients.route53.hostedZoneID", "", "list-hosted-zones"},
		{"zone id from an ARN", "clients:\n  route53: {hostedZoneID: 'arn:aws:route53:::hostedzone/Z1', domain: etcd.example.com}\n", "clients.route53.hostedZoneID", "arn:aws:route53:::hostedzone/Z1", "starts with Z"},
		{"no domain", "clients:\n  route53: {hostedZoneID: Z0123456789ABCDEFGHIJ}\n", "clients.route53.domain", "", "etcd.example.com"},
		{"domain with scheme", "clients:\n  route53: {" + zone + "domain: 'https://etcd.example.com'}\n", "clients.route53.domain", "https://etcd.example.com", "no scheme"},
		{"wildcard domain", "clients:\n  route53: {" + zone + "domain: '*.example.com'}\n", "clients.route53.domain", "*.example.com", "wildcard"},
		{"ttl too long", "clients:\n  route53: {" + zone + "domain: etcd.example.com, ttl: 2d}\n", "clients.route53.ttl", "48h0m0s", "60s"},
		{"ttl fraction", "clients:\n  route53: {" + zone + "domain: etcd.example.com, ttl: 1500ms}\n", "clients.route53.ttl", "1.5s", "60s"},
		{"bad endpoint", "clients:\n  route53: {" + zone + "domain: etcd.example.com, endpoint: 'route53:443'}\n", "clients.route53.endpoint", "route53:443", "remove it"},
		{"bad region", "clients:\n  route53: {" + zone + "domain: etcd.example.com, region: global}\n", "clients.route53.region", "global", "us-east-1"},
		{"load balancer URL as a name", "clients:\n  dnsNames: [etcd.example.com, 'https://lb.example.com:2379']\n", "clients.dnsNames[1]", "https://lb.example.com:2379", "no scheme"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := load(t, minimal+c.yaml, nil, nil)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.field) || (c.value != "" && !strings.Contains(msg, c.value)) || !strings.Contains(msg, c.fix) {
				t.Errorf("message %q does not name %q = %q with the fix (%q)", msg, c.field, c.value, c.fix)
			}
		})
	}
}
