package config

import (
	"errors"
	"strings"
	"testing"
)

func TestFleetDefaults(t *testing.T) {
	cfg, _, err := load(t, minimal, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fleet.Notices != "imds" || cfg.Fleet.Interval.D() != DefaultFleetInterval || cfg.Fleet.AutoScaling.HeartbeatInterval.D() != DefaultHookHeartbeat {
		t.Errorf("imds identity: fleet %+v, want notices imds, interval 5s, heartbeat 60s", cfg.Fleet)
	}
	cfg, _, err = load(t, minimal+"node:\n  identity: static\n  ip: 10.0.0.2\n  imdsEndpoint: http://127.0.0.1:1338\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fleet.Notices != "off" || cfg.Fleet.IMDSEndpoint != "http://127.0.0.1:1338" {
		t.Errorf("static identity: fleet %+v, want notices off and node.imdsEndpoint", cfg.Fleet)
	}
	good := minimal + "fleet:\n  autoScaling:\n    group: etcd-nodes\n    launchHook: etcd-launch\n    terminateHook: etcd/terminate_1\n"
	if _, _, err := load(t, good, nil, nil); err != nil {
		t.Errorf("hooks: %v", err)
	}
}

// TestFleetBadFields: each bad fleet setting names its field and the fix.
func TestFleetBadFields(t *testing.T) {
	for _, c := range []struct{ name, yaml, field, fix string }{
		{"notices", "fleet:\n  notices: sqs\n", "fleet.notices", `"imds"`},
		{"interval", "fleet:\n  interval: 2m\n", "fleet.interval", "5s"},
		{"hook without group", "fleet:\n  autoScaling:\n    launchHook: l\n", "fleet.autoScaling.group", "name the Auto Scaling group"},
		{"group without hook", "fleet:\n  autoScaling:\n    group: g\n", "fleet.autoScaling", "launchHook"},
		{"bad hook name", "fleet:\n  autoScaling:\n    group: g\n    terminateHook: \"my hook\"\n", "fleet.autoScaling.terminateHook", "describe-lifecycle-hooks"},
		{"same hook twice", "fleet:\n  autoScaling:\n    group: g\n    launchHook: h\n    terminateHook: h\n", "fleet.autoScaling.terminateHook", "name each"},
		{"terminate hook with notices off", "fleet:\n  notices: \"off\"\n  autoScaling:\n    group: g\n    terminateHook: h\n", "fleet.notices", `"imds"`},
		{"bad region", "fleet:\n  autoScaling:\n    group: g\n    launchHook: h\n    region: Ireland\n", "fleet.autoScaling.region", "eu-west-1"},
		{"static identity needs a region", "node:\n  identity: static\n  ip: 10.0.0.2\nfleet:\n  notices: imds\n  autoScaling:\n    group: g\n    launchHook: h\n",
			"fleet.autoScaling.region", "eu-west-1"},
		{"bad endpoint", "fleet:\n  autoScaling:\n    group: g\n    launchHook: h\n    endpoint: autoscaling.local\n", "fleet.autoScaling.endpoint", "https://"},
		{"heartbeat", "fleet:\n  autoScaling:\n    group: g\n    launchHook: h\n    heartbeatInterval: 10ms\n", "fleet.autoScaling.heartbeatInterval", "60s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := load(t, minimal+c.yaml, nil, nil)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %v, want a config error", err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.field) || !strings.Contains(msg, c.fix) {
				t.Errorf("error %q, want it to name %s and the fix %q", msg, c.field, c.fix)
			}
		})
	}
}
