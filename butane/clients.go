package butane

import "github.com/etcd-agent/etcd-agent/agent/config"

// SpecClients is how applications find the cluster, copied into every
// node's config as its clients: section (see agent/config.Route53). With
// route53.hostedZoneID set, the nodes' instance role needs the Route 53
// policy in docs/deploy-aws.md.
type SpecClients struct {
	Route53 *SpecRoute53 `yaml:"route53,omitempty"`
	// DNSNames are added to every member's server certificate (a load
	// balancer's name).
	DNSNames []string `yaml:"dnsNames,omitempty"`
}

// SpecRoute53 is clients.route53 of the agent's config.
type SpecRoute53 struct {
	HostedZoneID string `yaml:"hostedZoneID"`
	Domain       string `yaml:"domain"`
	TTL          string `yaml:"ttl,omitempty"`
	Region       string `yaml:"region,omitempty"`
}

// validate reports a TTL that does not parse; the agent's own checks of
// the rendered config (checkAgentConfig) cover the rest.
func (c SpecClients) validate(ps *problems) {
	if r := c.Route53; r != nil && r.TTL != "" {
		if _, err := config.ParseDuration(r.TTL); err != nil {
			ps.add("clients.route53.ttl", r.TTL, "is not a duration", "write it like 60s")
		}
	}
}

// clientsDoc is the spec's clients section as the agent config carries it;
// nil when the spec sets nothing (off).
func clientsDoc(c SpecClients) *SpecClients {
	if c.Route53 == nil && len(c.DNSNames) == 0 {
		return nil
	}
	out := &SpecClients{DNSNames: c.DNSNames}
	if c.Route53 != nil {
		r := *c.Route53
		if _, err := config.ParseDuration(r.TTL); err != nil {
			r.TTL = "" // validate reports it
		}
		out.Route53 = &r
	}
	return out
}
