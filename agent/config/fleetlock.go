package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"
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
	// MaintenanceWindow, when set, is when reboots may start: a pre-reboot
	// outside it is refused (kind outside_maintenance_window, saying when
	// the next window opens) and Zincati asks again later. Zincati's
	// fleet_lock strategy has no window of its own. Zero: any time.
	MaintenanceWindow *MaintenanceWindow `yaml:"maintenanceWindow,omitempty"`
}

// MaintenanceWindow is a weekly window in UTC, like Zincati's periodic
// strategy: it opens on each of Days at StartTime and stays open for
// Length (past midnight into the next day when it is long enough).
type MaintenanceWindow struct {
	// Days are the days the window opens on: Mon, Tue, Wed, Thu, Fri, Sat,
	// Sun. Zero: every day.
	Days []string `yaml:"days,omitempty"`
	// StartTime is when the window opens, "HH:MM" in UTC (e.g. "22:30").
	StartTime string `yaml:"startTime"`
	// Length is how long the window stays open, 1m to 24h (e.g. "1h30m").
	Length Duration `yaml:"length"`
}

// WeekdayNames are the names MaintenanceWindow.Days takes, Sunday first.
var WeekdayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// Weekdays are the window's days, every day when Days is empty; unknown
// names are left out (Validate reports them).
func (w MaintenanceWindow) Weekdays() [7]bool {
	var out [7]bool
	if len(w.Days) == 0 {
		return [7]bool{true, true, true, true, true, true, true}
	}
	for _, d := range w.Days {
		if i := slices.Index(WeekdayNames[:], d); i >= 0 {
			out[i] = true
		}
	}
	return out
}

// Start is StartTime as the time since midnight UTC (false when it does
// not parse).
func (w MaintenanceWindow) Start() (time.Duration, bool) {
	t, err := time.Parse("15:04", w.StartTime)
	if err != nil || len(w.StartTime) != 5 {
		return 0, false
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, true
}

// validate checks fleetLock.maintenanceWindow.
func (w MaintenanceWindow) validate(bad func(field, value, problem, fix string)) {
	const f = "fleetLock.maintenanceWindow"
	seen := map[string]bool{}
	for i, d := range w.Days {
		field := fmt.Sprintf("%s.days[%d]", f, i)
		switch {
		case !slices.Contains(WeekdayNames[:], d):
			bad(field, d, "is not a day of the week", "write days as Mon, Tue, Wed, Thu, Fri, Sat or Sun")
		case seen[d]:
			bad(field, d, "is listed twice", "list each day once")
		}
		seen[d] = true
	}
	if _, ok := w.Start(); !ok {
		bad(f+".startTime", w.StartTime, "is not a time of day HH:MM", "write it in UTC like \"22:30\"")
	}
	if l := w.Length.D(); l < time.Minute || l > 24*time.Hour {
		bad(f+".length", w.Length.D().String(), "must be between 1m and 24h", "write it like \"1h30m\": how long reboots may start after startTime")
	}
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
	if f.MaintenanceWindow != nil {
		f.MaintenanceWindow.validate(bad)
	}
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
