package config

import (
	"fmt"
	"regexp"
	"time"
)

// Fleet configures how the agent meets EC2's churn (agent/fleet): the
// notices it watches in the instance metadata (Auto Scaling terminate,
// spot interruption, rebalance recommendation, scheduled maintenance) and
// the Auto Scaling lifecycle hooks it completes.
type Fleet struct {
	// Notices is "imds" (watch IMDS and leave the cluster on a notice,
	// while the other voters keep a quorum) or "off". Zero: "imds" when
	// node.identity is "imds", else "off".
	Notices string `yaml:"notices,omitempty"`
	// IMDSEndpoint is where the notices are read. Zero: node.imdsEndpoint
	// (then the SDK default http://169.254.169.254).
	IMDSEndpoint string `yaml:"imdsEndpoint,omitempty"`
	// Interval is the pause between two reads of the notices. Zero: 5s.
	// Between 1s and 30s (a spot notice gives two minutes).
	Interval Duration `yaml:"interval,omitempty"`
	// AutoScaling names the group's lifecycle hooks this agent completes.
	AutoScaling AutoScaling `yaml:"autoScaling,omitempty"`
}

// AutoScaling names an Auto Scaling group and its lifecycle hooks.
type AutoScaling struct {
	// Group is the Auto Scaling group's name. Required with a hook.
	Group string `yaml:"group,omitempty"`
	// LaunchHook is the group's autoscaling:EC2_INSTANCE_LAUNCHING hook:
	// completed with CONTINUE once the member is a healthy, caught-up
	// voter (or a standby), with ABANDON on a configuration error.
	// Zero: none.
	LaunchHook string `yaml:"launchHook,omitempty"`
	// TerminateHook is the group's autoscaling:EC2_INSTANCE_TERMINATING
	// hook: completed with CONTINUE once the member left. Zero: none.
	TerminateHook string `yaml:"terminateHook,omitempty"`
	// Region of the group. Zero: the instance's region (from IMDS).
	Region string `yaml:"region,omitempty"`
	// Endpoint overrides the Auto Scaling API's URL (a VPC endpoint,
	// tests). Zero: AWS's.
	Endpoint string `yaml:"endpoint,omitempty"`
	// HeartbeatInterval is the pause between two heartbeats of a pending
	// hook: well under the hook's heartbeat timeout. Zero: 60s.
	HeartbeatInterval Duration `yaml:"heartbeatInterval,omitempty"`
	// ReplacementWait (with TerminateHook): how long a voter the group
	// terminates offers its seat to a replacement (a standby joins as a
	// learner and is promoted) before it leaves without one, as on a
	// scale-in. A replacement learner still catching up is waited for
	// past it; a leave deferred because another member terminated at the
	// same time left first starts it again. Zero: 2m.
	ReplacementWait Duration `yaml:"replacementWait,omitempty"`
}

// Fleet defaults and bounds.
const (
	DefaultFleetInterval     = 5 * time.Second
	MinFleetInterval         = time.Second
	MaxFleetInterval         = 30 * time.Second
	DefaultHookHeartbeat     = time.Minute
	DefaultReplacementWait   = 2 * time.Minute
	MinHookHeartbeatInterval = time.Second
)

// Hooks reports whether a lifecycle hook is configured.
func (a AutoScaling) Hooks() bool { return a.LaunchHook != "" || a.TerminateHook != "" }

// hookName is what Auto Scaling accepts as a lifecycle hook name.
var hookName = regexp.MustCompile(`^[A-Za-z0-9\-_/]{1,255}$`)

// region looks like an AWS region ("eu-west-1", "us-gov-west-1").
var region = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

func (c *Config) applyFleetDefaults() {
	f := &c.Fleet
	if f.Notices == "" {
		f.Notices = "off"
		if c.Node.Identity == "imds" {
			f.Notices = "imds"
		}
	}
	if f.IMDSEndpoint == "" {
		f.IMDSEndpoint = c.Node.IMDSEndpoint
	}
	if f.Interval == 0 {
		f.Interval = Duration(DefaultFleetInterval)
	}
	if f.AutoScaling.HeartbeatInterval == 0 {
		f.AutoScaling.HeartbeatInterval = Duration(DefaultHookHeartbeat)
	}
	if f.AutoScaling.ReplacementWait == 0 {
		f.AutoScaling.ReplacementWait = Duration(DefaultReplacementWait)
	}
}

func (c *Config) validateFleet(bad func(field, value, problem, fix string)) {
	f := c.Fleet
	switch f.Notices {
	case "imds", "off":
	default:
		bad("fleet.notices", f.Notices, "is not a notice source", `use "imds" (watch EC2's notices) or "off"`)
	}
	if f.IMDSEndpoint != "" {
		checkURL("fleet.imdsEndpoint", f.IMDSEndpoint, bad)
	}
	if d := f.Interval.D(); d < MinFleetInterval || d > MaxFleetInterval {
		bad("fleet.interval", f.Interval.String(), fmt.Sprintf("must be between %s and %s (a spot notice gives two minutes)", MinFleetInterval, MaxFleetInterval), "use 5s (the default)")
	}
	a := f.AutoScaling
	if a.Group == "" && !a.Hooks() {
		return
	}
	if a.Group == "" {
		bad("fleet.autoScaling.group", "", "is required with a lifecycle hook", "name the Auto Scaling group the hooks belong to")
	} else if len(a.Group) > 255 {
		bad("fleet.autoScaling.group", a.Group, "is longer than 255 characters", "use the group's name as `aws autoscaling describe-auto-scaling-groups` shows it")
	}
	if !a.Hooks() {
		bad("fleet.autoScaling", a.Group, "names a group but no hook", "set launchHook and/or terminateHook to the group's lifecycle hook names")
	}
	for _, h := range []struct{ field, name string }{{"fleet.autoScaling.launchHook", a.LaunchHook}, {"fleet.autoScaling.terminateHook", a.TerminateHook}} {
		if h.name != "" && !hookName.MatchString(h.name) {
			bad(h.field, h.name, "is not a lifecycle hook name (1-255 letters, digits, '-', '_' or '/')", "use the hook's name as `aws autoscaling describe-lifecycle-hooks` shows it")
		}
	}
	if a.LaunchHook != "" && a.LaunchHook == a.TerminateHook {
		bad("fleet.autoScaling.terminateHook", a.TerminateHook, "is the same hook as launchHook", "a hook is for launching or terminating instances: name each")
	}
	if a.TerminateHook != "" && f.Notices != "imds" {
		bad("fleet.notices", f.Notices, "is off, but the terminate hook is seen only in IMDS", `set fleet.notices to "imds"`)
	}
	if a.Region != "" && !region.MatchString(a.Region) {
		bad("fleet.autoScaling.region", a.Region, "is not an AWS region", "use a region like eu-west-1, or leave it empty for the instance's own")
	}
	if a.Region == "" && c.Node.Identity != "imds" {
		bad("fleet.autoScaling.region", "", "is required when node.identity is not imds (the region is read from IMDS otherwise)", "set the group's region, like eu-west-1")
	}
	if a.Endpoint != "" {
		checkURL("fleet.autoScaling.endpoint", a.Endpoint, bad)
	}
	if a.HeartbeatInterval.D() < MinHookHeartbeatInterval {
		bad("fleet.autoScaling.heartbeatInterval", a.HeartbeatInterval.String(), "is shorter than 1s", "use 60s (the default), well under the hook's heartbeat timeout")
	}
}
