package butane

import (
	"fmt"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

// ZincatiConfigPath is the Zincati drop-in the node config writes: it
// switches Zincati to the fleet_lock strategy, asking this node's agent.
const ZincatiConfigPath = "/etc/zincati/config.d/55-etcd-agent-fleet-lock.toml"

// Reboot strategies the spec accepts.
const (
	// StrategyFleetLock: Zincati asks the node's agent before each reboot
	// (the default).
	StrategyFleetLock = "fleet_lock"
	// StrategyZincatiDefault leaves Zincati as Fedora CoreOS ships it
	// (reboots as soon as an update is staged): no coordination.
	StrategyZincatiDefault = "zincati-default"
)

// SpecReboots says how the nodes' OS updates reboot.
type SpecReboots struct {
	// Strategy is fleet_lock (Zincati asks the node's agent, which grants a
	// reboot only when the cluster can lose the member) or zincati-default.
	// Zero: fleet_lock.
	Strategy string `yaml:"strategy"`
	// Group is the nodes' Zincati group ([identity] group). Zero: "default".
	Group string `yaml:"group"`
	// FleetLock is the agent's FleetLock endpoint (the agent config's
	// fleetLock section: address, slots, maintenanceWindow). Zero: the
	// agent's defaults. The Zincati drop-in stays fleet_lock: that strategy
	// has no window of its own, so the agents keep it.
	FleetLock config.FleetLock `yaml:"fleetLock"`
}

func (r *SpecReboots) applyDefaults() {
	if r.Strategy == "" {
		r.Strategy = StrategyFleetLock
	}
	if r.Group == "" {
		r.Group = "default"
	}
}

func (r SpecReboots) validate(ps *problems) {
	switch r.Strategy {
	case StrategyFleetLock:
	case StrategyZincatiDefault:
		if r.FleetLock.Address != "" || len(r.FleetLock.Slots) > 0 || r.FleetLock.MaintenanceWindow != nil {
			ps.add("reboots.fleetLock", "", "is set but reboots.strategy is "+StrategyZincatiDefault+": Zincati will not ask the agent", "remove it, or use strategy fleet_lock")
		}
	default:
		ps.add("reboots.strategy", r.Strategy, "is not a reboot strategy", "use fleet_lock (coordinated by the agents) or zincati-default")
	}
	if !config.FleetLockGroupPattern.MatchString(r.Group) {
		ps.add("reboots.group", r.Group, "is not a Zincati group name", "use letters, digits, '.' and '-'")
	}
	if r.FleetLock.Disabled {
		ps.add("reboots.fleetLock.disabled", "true", "would leave Zincati asking an agent that does not answer: no node would ever reboot for an update",
			"use reboots.strategy: "+StrategyZincatiDefault+" to opt out of coordinated reboots")
	}
}

// zincatiConfig is the Zincati drop-in for the fleet_lock strategy ("" for
// the Zincati default).
func zincatiConfig(r SpecReboots) string {
	if r.Strategy != StrategyFleetLock {
		return ""
	}
	addr := r.FleetLock.Address
	if addr == "" {
		addr = config.DefaultFleetLockAddress
	}
	var b strings.Builder
	b.WriteString("# Rendered by `etcd-agent butane`: Zincati asks this node's etcd-agent before each reboot.\n")
	b.WriteString("# The agent grants it only when the etcd cluster can lose this member.\n")
	fmt.Fprintf(&b, "[identity]\ngroup = %q\n\n", r.Group)
	b.WriteString("[updates]\nstrategy = \"fleet_lock\"\n\n")
	fmt.Fprintf(&b, "[updates.fleet_lock]\nbase_url = %q\n", "http://"+addr+"/")
	return b.String()
}
