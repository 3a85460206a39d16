package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFleetLockSection(t *testing.T) {
	cfg, warnings, err := load(t, minimal, nil, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("minimal config: %v, warnings %v", err, warnings)
	}
	if cfg.FleetLock.Disabled || cfg.FleetLock.Address != DefaultFleetLockAddress || cfg.FleetLock.SlotsFor("default") != 1 || cfg.FleetLock.SlotsFor("any") != 1 {
		t.Errorf("fleetLock = %+v, want served at %s with one slot per group by default", cfg.FleetLock, DefaultFleetLockAddress)
	}
	cfg, _, err = load(t, minimal+"fleetLock:\n  address: \"[::1]:9200\"\n  slots:\n    workers: 2\n", nil, nil)
	if err != nil || cfg.FleetLock.Address != "[::1]:9200" || cfg.FleetLock.SlotsFor("workers") != 2 || cfg.FleetLock.SlotsFor("default") != 1 {
		t.Errorf("loopback IPv6 and 2 worker slots: %+v, %v", cfg.FleetLock, err)
	}
	bad := map[string][2]string{
		"fleetLock:\n  address: 2384\n":                          {"fleetLock.address", "is not host:port"},
		"fleetLock:\n  address: 127.0.0.1:0\n":                   {"fleetLock.address", "has no valid TCP port"},
		"fleetLock:\n  address: 127.0.0.1:2383\n":                {"fleetLock.address", "agent API port"},
		"fleetLock:\n  address: 0.0.0.0:2384\n":                  {"fleetLock.address", "is not a loopback address"},
		"fleetLock:\n  address: 10.0.1.5:2384\n":                 {"fleetLock.address", "is not a loopback address"},
		"fleetLock:\n  address: zincati:2384\n":                  {"fleetLock.address", "host is not an IP address or localhost"},
		"fleetLock:\n  slots:\n    default: 0\n":                 {"fleetLock.slots.default", "must be 1-9"},
		"fleetLock:\n  slots:\n    \"a/b\": 1\n":                 {"fleetLock.slots", "is not a valid Zincati group name"},
		"metrics:\n  enabled: true\n  address: 127.0.0.1:2384\n": {"fleetLock.address", "is also metrics.address"},
	}
	for yaml, want := range bad {
		_, _, err := load(t, minimal+yaml, nil, nil)
		var cerr *Error
		if err == nil || !strings.Contains(err.Error(), want[1]) || !errors.As(err, &cerr) || cerr.Problems[0].Field != want[0] {
			t.Errorf("%q: err %v, want a %s problem mentioning %q", yaml, err, want[0], want[1])
		}
	}
	// Disabled, nothing else is checked beyond the address's shape.
	if cfg, _, err := load(t, minimal+"fleetLock:\n  disabled: true\n", nil, nil); err != nil || !cfg.FleetLock.Disabled {
		t.Errorf("disabled: %+v, %v", cfg.FleetLock, err)
	}
}

// TestMaintenanceWindow: a window loads with its days and start time; each
// mistake names its field and the fix.
func TestMaintenanceWindow(t *testing.T) {
	cfg, _, err := load(t, minimal+"fleetLock:\n  maintenanceWindow:\n    days: [Sat, Sun]\n    startTime: \"22:30\"\n    length: 3h\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.FleetLock.MaintenanceWindow
	start, ok := w.Start()
	if days := w.Weekdays(); !ok || start != 22*time.Hour+30*time.Minute || w.Length.D() != 3*time.Hour || days != [7]bool{true, false, false, false, false, false, true} {
		t.Errorf("window = %+v: start %s (%v), days %v", w, start, ok, days)
	}
	every, _, err := load(t, minimal+"fleetLock:\n  maintenanceWindow:\n    startTime: \"00:00\"\n    length: 24h\n", nil, nil)
	if err != nil || every.FleetLock.MaintenanceWindow.Weekdays() != [7]bool{true, true, true, true, true, true, true} {
		t.Errorf("no days: %v, want every day", err)
	}
	const pre = "fleetLock:\n  maintenanceWindow:\n"
	bad := []struct{ yaml, field, problem, fix string }{
		{pre + "    days: [Saturday]\n    startTime: \"22:30\"\n    length: 1h\n", "fleetLock.maintenanceWindow.days[0]", "is not a day of the week", "Mon, Tue"},
		{pre + "    days: [Sat, Sat]\n    startTime: \"22:30\"\n    length: 1h\n", "fleetLock.maintenanceWindow.days[1]", "is listed twice", "each day once"},
		{pre + "    startTime: \"25:00\"\n    length: 1h\n", "fleetLock.maintenanceWindow.startTime", "is not a time of day HH:MM", "in UTC"},
		{pre + "    startTime: \"9:30\"\n    length: 1h\n", "fleetLock.maintenanceWindow.startTime", "is not a time of day HH:MM", "in UTC"},
		{pre + "    startTime: \"22:30\"\n", "fleetLock.maintenanceWindow.length", "between 1m and 24h", "1h30m"},
		{pre + "    startTime: \"22:30\"\n    length: 25h\n", "fleetLock.maintenanceWindow.length", "between 1m and 24h", "1h30m"},
	}
	for _, b := range bad {
		_, _, err := load(t, minimal+b.yaml, nil, nil)
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Problems[0].Field != b.field || !strings.Contains(cerr.Problems[0].Problem, b.problem) || !strings.Contains(cerr.Problems[0].Fix, b.fix) {
			t.Errorf("%q: err %v, want %s %q (fix mentioning %q)", b.yaml, err, b.field, b.problem, b.fix)
		}
	}
}
