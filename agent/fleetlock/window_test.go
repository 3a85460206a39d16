package fleetlock

import (
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

func days(ds ...time.Weekday) [7]bool {
	var out [7]bool
	for _, d := range ds {
		out[d] = true
	}
	return out
}

// TestWindowAt: whether a pre-reboot at the node's clock is inside the
// window, and when the window closes or next opens (all UTC).
func TestWindowAt(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	weekend := Window{Days: days(time.Saturday, time.Sunday), Start: 22*time.Hour + 30*time.Minute, Length: 3 * time.Hour}
	daily := Window{Days: days(0, 1, 2, 3, 4, 5, 6), Start: 2 * time.Hour, Length: time.Hour}
	for _, tc := range []struct {
		name   string
		w      Window
		now    string
		open   bool
		change string // when it closes (open) or next opens
	}{
		// 2026-12-05 is a Saturday.
		{"Saturday morning: opens tonight", weekend, "2026-12-05T06:00:00Z", false, "2026-12-05T22:30:00Z"},
		{"at the opening minute", weekend, "2026-12-05T22:30:00Z", true, "2026-12-06T01:30:00Z"},
		{"past midnight, still Saturday's window", weekend, "2026-12-06T01:00:00Z", true, "2026-12-06T01:30:00Z"},
		{"at the closing minute: closed, Sunday's next", weekend, "2026-12-06T01:30:00Z", false, "2026-12-06T22:30:00Z"},
		{"Monday 00:30: Sunday's window runs past midnight", weekend, "2026-12-07T00:30:00Z", true, "2026-12-07T01:30:00Z"},
		{"Monday noon: next Saturday", weekend, "2026-12-07T12:00:00Z", false, "2026-12-12T22:30:00Z"},
		{"a clock in another zone is read as UTC", weekend, "2026-12-05T23:30:00+01:00", true, "2026-12-06T01:30:00Z"},
		{"daily, before", daily, "2026-12-09T01:59:59Z", false, "2026-12-09T02:00:00Z"},
		{"daily, after: tomorrow", daily, "2026-12-09T03:00:00Z", false, "2026-12-10T02:00:00Z"},
		{"daily, inside", daily, "2026-12-09T02:15:00Z", true, "2026-12-09T03:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open, change := tc.w.At(at(tc.now))
			if open != tc.open || !change.Equal(at(tc.change)) {
				t.Errorf("At(%s) = %v, %s; want %v, %s", tc.now, open, change.Format(time.RFC3339), tc.open, tc.change)
			}
			d, refused := OutsideWindow(&tc.w, at(tc.now))
			if refused == tc.open || (refused && (d.Kind != KindOutsideWindow || d.Reason == "")) {
				t.Errorf("OutsideWindow = %+v, %v; want a refusal only while closed", d, refused)
			}
		})
	}
	if _, refused := OutsideWindow(nil, at("2026-12-05T06:00:00Z")); refused {
		t.Error("no window refused a reboot")
	}
}

// TestWindowOfConfig: the configured window, as status shows it.
func TestWindowOfConfig(t *testing.T) {
	w := WindowOf(&config.MaintenanceWindow{Days: []string{"Sun", "Sat"}, StartTime: "22:30", Length: config.Duration(90 * time.Minute)})
	if got := w.String(); got != "Sun,Sat 22:30 UTC for 1h30m0s" {
		t.Errorf("String = %q", got)
	}
	if got := WindowOf(&config.MaintenanceWindow{StartTime: "04:05", Length: config.Duration(time.Hour)}).String(); got != "every day 04:05 UTC for 1h0m0s" {
		t.Errorf("every day: %q", got)
	}
	if WindowOf(nil) != nil {
		t.Error("no config, a window")
	}
}
