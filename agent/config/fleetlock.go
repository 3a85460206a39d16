package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
)

// DefaultFleetLockAddress is where the agent serves the FleetLock protocol
// to its node's Zincati: loopback, beside the metrics (2382) and the agent
// API (2383).
const DefaultFleetLockAddress = "127.0.0.1:2384"

// FleetLockGroupPattern is what a FleetLock group name may be: Zincati's
// own rule for its `group` setting, and safe inside an etcd key.
var FleetLockGroupPattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// FleetLock configures coordinated OS reboots (agent/fleetlock): the agent
// answers its node's Zincati (`strategy = "fleet_lock"`) and grants a reboot
// only when the cluster can lose this member.
type FleetLock struct {
	// Disabled stops serving the FleetLock protocol. Zero: served (the
	// rendered Butane config points Zincati at it).
	Disabled bool `yaml:"disabled,omitempty"`
	// Address is the host:port to listen on, plain HTTP: a loopback IP or
	// "localhost" only, since the protocol has no authentication and each
	// node's Zincati asks its own agent. Zero: 127.0.0.1:2384.
	Address string `yaml:"address,omitempty"`
	// Slots is how many nodes of each Zincati group may hold a reboot slot
	// at once. A group not listed has one slot. Zero: one slot for every
	// group. Whatever the count, a slot is granted only while the cluster
	// keeps its quorum without the member and every other slot holder's.
	Slots map[string]int `yaml:"slots,omitempty"`
}

// SlotsFor is how many slots group has.
func (f FleetLock) SlotsFor(group string) int {
	if n, ok := f.Slots[group]; ok && n > 0 {
		return n
	}
	return 1
}

func (f *FleetLock) applyDefaults() {
	if f.Address == "" {
		f.Address = DefaultFleetLockAddress
	}
}

// validateFleetLock checks fleetLock.address (loopback only) and the slot
// counts.
func (c *Config) validateFleetLock(bad func(field, value, problem, fix string)) {
	f := c.FleetLock
	host, portStr, err := net.SplitHostPort(f.Address)
	if err != nil {
		bad("fleetLock.address", f.Address, "is not host:port", "write it like "+DefaultFleetLockAddress)
		return
	}
	port, err := strconv.Atoi(portStr)
	switch {
	case err != nil || port < 1 || port > 65535:
		bad("fleetLock.address", f.Address, "has no valid TCP port", "use a port in 1-65535, e.g. "+DefaultFleetLockAddress)
	case port == c.Etcd.ClientPort || port == c.Etcd.PeerPort || port == c.Agent.APIPort:
		bad("fleetLock.address", f.Address, fmt.Sprintf("uses etcd's client or peer port or the agent API port (%d/%d/%d)", c.Etcd.ClientPort, c.Etcd.PeerPort, c.Agent.APIPort),
			"pick another port, e.g. 2384")
	case c.Metrics.Enabled && c.Metrics.Address == f.Address:
		bad("fleetLock.address", f.Address, "is also metrics.address", "pick another port, e.g. 2384")
	}
	if host != "localhost" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			bad("fleetLock.address", f.Address, "host is not an IP address or localhost", "write it like "+DefaultFleetLockAddress)
			return
		}
		if !ip.IsLoopback() {
			bad("fleetLock.address", f.Address, "is not a loopback address: the FleetLock protocol has no authentication, so anyone reaching it could hold or free the cluster's reboot slot",
				"use "+DefaultFleetLockAddress+": each node's Zincati asks its own agent on the node itself")
		}
	}
	groups := make([]string, 0, len(f.Slots))
	for g := range f.Slots {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		if !FleetLockGroupPattern.MatchString(g) {
			bad("fleetLock.slots", g, "is not a valid Zincati group name", "use letters, digits, '.' and '-' (Zincati's [updates] group)")
		}
		if n := f.Slots[g]; n < 1 || n > 9 {
			bad("fleetLock.slots."+g, strconv.Itoa(n), "must be 1-9", "use 1 (one node of the group reboots at a time)")
		}
	}
}
