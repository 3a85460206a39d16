package systemd_test

import (
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/systemd"
)

func TestWatchdogInterval(t *testing.T) {
	const pid = 4242
	for _, tc := range []struct {
		name        string
		usec, wdPID string
		want        time.Duration
	}{
		{"unset", "", "", 0},
		{"60s for any pid", "60000000", "", 30 * time.Second},
		{"60s for us", "60000000", "4242", 30 * time.Second},
		{"for another process", "60000000", "1", 0},
		{"odd microseconds", "3", "", 1500 * time.Nanosecond},
		{"not a number", "sixty", "", 0},
		{"zero", "0", "", 0},
		{"negative", "-5", "", 0},
		{"overflows a Duration", "18446744073709551", "", 0},
		{"bad pid", "60000000", "self", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := systemd.WatchdogInterval(tc.usec, tc.wdPID, pid); got != tc.want {
				t.Fatalf("WatchdogInterval(%q, %q, %d) = %v, want %v", tc.usec, tc.wdPID, pid, got, tc.want)
			}
		})
	}
}
