package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Clients is how applications find the cluster.
type Clients struct {
	// Route53 keeps the cluster's DNS SRV records in a Route 53 zone.
	// Optional: zero (no hostedZoneID) is off.
	Route53 Route53 `yaml:"route53,omitempty"`
	// DNSNames are more names clients reach the members by (a load
	// balancer's DNS name or an alias of it), added to every member's
	// server certificate so TLS checks pass through it. Zero: none.
	DNSNames []string `yaml:"dnsNames,omitempty"`
}

// Route53 is the zone where the agents keep _etcd-client-ssl._tcp.<domain>
// (one SRV record per voting member, what `etcdctl --discovery-srv` and
// etcd's client SRV discovery resolve) and one A record per member
// (<member name>.<domain>, the SRV targets). Only the leader's agent writes;
// a leaving node's `leave` removes its own records first. Credentials come
// from the AWS SDK's default chain: on EC2 the instance role (see
// docs/deploy-aws.md for its policy).
type Route53 struct {
	// HostedZoneID is the zone's ID (Z0123456789ABCDEFGHIJ, as the console
	// shows it). Zero: off.
	HostedZoneID string `yaml:"hostedZoneID,omitempty"`
	// Domain is the name under which the records are kept, inside the
	// zone: e.g. etcd.example.com gives _etcd-client-ssl._tcp.etcd.example.com
	// and etcd-10-0-1-5.etcd.example.com. Required with hostedZoneID.
	Domain string `yaml:"domain,omitempty"`
	// TTL of the records. Zero: 60s. Whole seconds, at most 24h: clients
	// keep a removed member's address for up to this long.
	TTL Duration `yaml:"ttl,omitempty"`
	// Region signs the requests. Zero: the SDK's default (AWS_REGION, …),
	// else us-east-1 (Route 53 is global).
	Region string `yaml:"region,omitempty"`
	// Endpoint is another Route 53 API URL (tests, a proxy). Zero: AWS.
	Endpoint string `yaml:"endpoint,omitempty"`
}

// Enabled reports whether the agents keep Route 53 records.
func (r Route53) Enabled() bool { return r.HostedZoneID != "" }

// DefaultRoute53TTL is clients.route53.ttl's zero value.
const DefaultRoute53TTL = 60 * time.Second

// hostedZoneID is Route 53's zone ID shape, with or without the
// /hostedzone/ prefix some tools print.
var hostedZoneID = regexp.MustCompile(`^(/hostedzone/)?Z[A-Z0-9]{1,31}$`)

// dnsName is a domain name of letters, digits and hyphens (no wildcard).
var dnsName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (c *Config) applyClientDefaults() {
	r := &c.Clients.Route53
	if r.Enabled() && r.TTL == 0 {
		r.TTL = Duration(DefaultRoute53TTL)
	}
	r.HostedZoneID = strings.TrimPrefix(r.HostedZoneID, "/hostedzone/")
	r.Domain = strings.ToLower(strings.TrimSuffix(r.Domain, "."))
}

func (c *Config) validateClients(bad func(field, value, problem, fix string)) {
	for i, n := range c.Clients.DNSNames {
		if d := strings.ToLower(strings.TrimSuffix(n, ".")); len(d) > 253 || !dnsName.MatchString(d) {
			bad(fmt.Sprintf("clients.dnsNames[%d]", i), n, "is not a DNS name", "write the name clients dial, e.g. etcd.example.com (no scheme, port or wildcard)")
		}
	}
	r := c.Clients.Route53
	if !r.Enabled() {
		if r.Domain != "" || r.TTL != 0 || r.Region != "" || r.Endpoint != "" {
			bad("clients.route53.hostedZoneID", "", "is empty but other clients.route53 settings are set", "set the zone's ID (aws route53 list-hosted-zones), or remove clients.route53")
		}
		return
	}
	if !hostedZoneID.MatchString(r.HostedZoneID) {
		bad("clients.route53.hostedZoneID", r.HostedZoneID, "is not a Route 53 hosted zone ID", "copy it from `aws route53 list-hosted-zones` (it starts with Z, e.g. Z0123456789ABCDEFGHIJ)")
	}
	switch {
	case r.Domain == "":
		bad("clients.route53.domain", "", "is required with clients.route53.hostedZoneID", "name the domain clients discover, inside the zone, e.g. etcd.example.com")
	case len(r.Domain) > 200 || !dnsName.MatchString(r.Domain):
		bad("clients.route53.domain", r.Domain, "is not a domain name", "write it like etcd.example.com (letters, digits, '-', no scheme or wildcard)")
	}
	if ttl := r.TTL.D(); ttl < time.Second || ttl > 24*time.Hour || ttl%time.Second != 0 {
		bad("clients.route53.ttl", r.TTL.String(), "must be whole seconds from 1s to 24h", "use 60s (the default): clients keep a removed member's address for up to the TTL")
	}
	if r.Endpoint != "" {
		if u, err := url.Parse(r.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("clients.route53.endpoint", r.Endpoint, "is not an http(s) URL", "remove it for AWS's Route 53, or write it like https://route53.example.com")
		}
	}
	if r.Region != "" && !awsRegion.MatchString(r.Region) {
		bad("clients.route53.region", r.Region, "is not an AWS region name", "write it like us-east-1, or remove it")
	}
}

// ClientDNSNames are the names clients reach this member by, added to its
// server certificate: clients.dnsNames, and when the agents keep Route 53
// records, its own record and the SRV domain (the name `etcdctl
// --discovery-srv --insecure-discovery=false` checks). Nil when none.
func (c *Config) ClientDNSNames(member string) []string {
	out := slices.Clone(c.Clients.DNSNames)
	if r := c.Clients.Route53; r.Enabled() {
		out = append(out, MemberRecordName(member, r.Domain), r.Domain)
	}
	return out
}

// MemberRecordName is the A record name of member under domain (the SRV
// target): etcd member names are valid DNS labels once lower-cased, with
// '.' and '_' (allowed in names, not in a label) as '-'.
func MemberRecordName(member, domain string) string {
	label := strings.NewReplacer(".", "-", "_", "-").Replace(strings.ToLower(member))
	return fmt.Sprintf("%s.%s", label, domain)
}
