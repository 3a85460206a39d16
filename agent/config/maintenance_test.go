package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMaintenanceDefaults(t *testing.T) {
	cfg, _, err := load(t, minimal, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Maintenance
	if m.Interval.D() != 10*time.Second || m.DefragFreeRatio != 0.5 || m.DefragFreeBytes != 100<<20 ||
		m.DefragPace.D() != time.Minute || m.DisarmBelow != 0.9 {
		t.Errorf("maintenance defaults = %+v", m)
	}
	cfg, _, err = load(t, minimal+"maintenance:\n  interval: 1s\n  defragFreeRatio: 0.25\n  defragFreeBytes: 8MiB\n  defragPace: 5s\n  disarmBelow: 0.8\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m = cfg.Maintenance
	if m.Interval.D() != time.Second || m.DefragFreeRatio != 0.25 || m.DefragFreeBytes != 8<<20 || m.DefragPace.D() != 5*time.Second || m.DisarmBelow != 0.8 {
		t.Errorf("maintenance = %+v", m)
	}
}

func TestMaintenanceBadFields(t *testing.T) {
	cases := []struct{ yaml, field, value string }{
		{"  interval: 100ms\n", "maintenance.interval", "100ms"},
		{"  defragFreeRatio: 1.5\n", "maintenance.defragFreeRatio", "1.5"},
		{"  defragFreeRatio: -0.1\n", "maintenance.defragFreeRatio", "-0.1"},
		{"  disarmBelow: 1\n", "maintenance.disarmBelow", "1"},
		{"  disarmBelow: -2\n", "maintenance.disarmBelow", "-2"},
		{"  defragFreeBytes: lots\n", "maintenance.defragFreeBytes (line 7): want a size", "lots"},
		{"  defragPace: soon\n", "maintenance.defragPace (line 7): want a duration", "soon"},
		{"  defragEvery: 1m\n", "maintenance.defragEvery (line 7): unknown key; maintenance takes interval, defragFreeRatio, defragFreeBytes, defragPace, disarmBelow", ""},
	}
	for _, c := range cases {
		t.Run(c.field+"="+c.value, func(t *testing.T) {
			_, _, err := load(t, minimal+"maintenance:\n"+c.yaml, nil, nil)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.field) || !strings.Contains(msg, c.value) || !saysFix(msg) {
				t.Errorf("message %q should name %q, show %q and give a fix", msg, c.field, c.value)
			}
		})
	}
}
