package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// DefaultMetricsAddress is where the agent serves its metrics when enabled:
// loopback only, next to etcd's ports (2379 client, 2380 peer, 2381 is the
// usual --listen-metrics-urls port).
const DefaultMetricsAddress = "127.0.0.1:2382"

// Metrics configures the agent's Prometheus endpoint (agent/metrics).
type Metrics struct {
	// Enabled serves the agent's metrics at http://<address>/metrics.
	// Zero: off.
	Enabled bool `yaml:"enabled,omitempty"`
	// Address is the host:port to listen on, host an IP address or
	// "localhost". Zero: 127.0.0.1:2382. A non-loopback address is allowed
	// (a Prometheus server elsewhere scrapes it) and warned about: the
	// endpoint is plain HTTP without authentication.
	Address string `yaml:"address,omitempty"`
}

func (m *Metrics) applyDefaults() {
	if m.Address == "" {
		m.Address = DefaultMetricsAddress
	}
}

// validateMetrics checks metrics.address; it returns a warning for an
// address that works but is reachable from other hosts.
func (c *Config) validateMetrics(bad func(field, value, problem, fix string)) (warnings []string) {
	m := c.Metrics
	host, portStr, err := net.SplitHostPort(m.Address)
	if err != nil {
		bad("metrics.address", m.Address, "is not host:port", "write it like 127.0.0.1:2382")
		return nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		bad("metrics.address", m.Address, "has no valid TCP port", "use a port in 1-65535, e.g. 127.0.0.1:2382")
	} else if port == c.Etcd.ClientPort || port == c.Etcd.PeerPort {
		bad("metrics.address", m.Address, fmt.Sprintf("uses etcd's client or peer port (%d/%d)", c.Etcd.ClientPort, c.Etcd.PeerPort), "pick another port, e.g. 2382")
	}
	loopback := host == "localhost"
	if !loopback {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			bad("metrics.address", m.Address, "host is not an IP address or localhost", "write it like 127.0.0.1:2382 (or 0.0.0.0:2382 for every interface)")
			return nil
		}
		loopback = ip.IsLoopback()
	}
	switch {
	case !m.Enabled && m.Address != DefaultMetricsAddress:
		warnings = append(warnings, fmt.Sprintf("metrics.address = %s is set but metrics.enabled is false: no metrics are served", m.Address))
	case m.Enabled && !loopback:
		warnings = append(warnings, fmt.Sprintf("metrics.address = %s serves metrics over plain HTTP without authentication beyond this host: limit who can reach the port (security group, firewall)", m.Address))
	}
	return warnings
}
