package fleetlock

import (
	"fmt"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// KindOutsideWindow refuses a pre-reboot outside the maintenance window:
// Zincati's fleet_lock strategy has no window of its own, so the agent
// keeps it, and Zincati asks again later.
const KindOutsideWindow = "outside_maintenance_window"

// Window is a weekly maintenance window in UTC (fleetLock.maintenanceWindow):
// it opens on each of its days at Start and stays open for Length.
type Window struct {
	Days   [7]bool // by time.Weekday
	Start  time.Duration
	Length time.Duration
}

// WindowOf is the configured window; nil when there is none (reboots may
// start at any time). w must have passed config validation.
func WindowOf(w *config.MaintenanceWindow) *Window {
	if w == nil {
		return nil
	}
	start, _ := w.Start()
	return &Window{Days: w.Weekdays(), Start: start, Length: w.Length.D()}
}

// At says whether the window is open at now and, when it is, when it
// closes; when it is not, when it next opens.
func (w Window) At(now time.Time) (open bool, change time.Time) {
	now = now.UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	// A window that opened yesterday may still be open (it runs past
	// midnight); the next opening is at most a week away.
	for d := -1; d <= 7; d++ {
		day := midnight.AddDate(0, 0, d)
		if !w.Days[day.Weekday()] {
			continue
		}
		opens := day.Add(w.Start)
		closes := opens.Add(w.Length)
		if !now.Before(opens) && now.Before(closes) {
			// Back-to-back windows (every day for 24h) are one.
			for next := opens.AddDate(0, 0, 1); w.Days[next.Weekday()] && !next.After(closes) && next.Sub(now) < 8*24*time.Hour; next = next.AddDate(0, 0, 1) {
				closes = next.Add(w.Length)
			}
			return true, closes
		}
		if opens.After(now) {
			return false, opens
		}
	}
	return false, time.Time{} // no day: validation prevents it
}

// String is the window as status shows it: "Sat,Sun 22:30 UTC for 3h0m0s".
func (w Window) String() string {
	var days []string
	for i, on := range w.Days {
		if on {
			days = append(days, config.WeekdayNames[i])
		}
	}
	which := strings.Join(days, ",")
	if len(days) == 7 {
		which = "every day"
	}
	return fmt.Sprintf("%s %02d:%02d UTC for %s", which, int(w.Start.Hours()), int(w.Start.Minutes())%60, w.Length)
}

// OutsideWindow is the refusal of a pre-reboot at now outside w (false
// when there is no window or it is open).
func OutsideWindow(w *Window, now time.Time) (Decision, bool) {
	if w == nil {
		return Decision{}, false
	}
	open, next := w.At(now)
	if open {
		return Decision{}, false
	}
	return refuse(KindOutsideWindow, "next window opens at %s (maintenance window %s)", next.Format(time.RFC3339), w), true
}

// ShowWindow puts w's state at now into f (status shows it); it reports
// whether that changed.
func ShowWindow(f *report.FleetLock, w *Window, now time.Time) bool {
	var desc string
	var open bool
	var change time.Time
	if w != nil {
		desc = w.String()
		open, change = w.At(now)
	}
	changed := f.Window != desc || f.WindowOpen != open || !f.WindowChange.Equal(change)
	f.Window, f.WindowOpen, f.WindowChange = desc, open, change
	return changed
}
