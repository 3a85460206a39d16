package systemd

import (
	"math"
	"strconv"
	"time"
)

// WatchdogInterval returns how often to send WATCHDOG=1: half of WATCHDOG_USEC,
// as systemd recommends. It returns 0 (no watchdog) when watchdogUSec is
// empty, not a positive integer, too large for a time.Duration, or when watchdogPID names another process
// than pid. The arguments are the values of WATCHDOG_USEC, WATCHDOG_PID and
// os.Getpid(), read once by the caller.
func WatchdogInterval(watchdogUSec, watchdogPID string, pid int) time.Duration {
	if watchdogUSec == "" {
		return 0
	}
	usec, err := strconv.ParseInt(watchdogUSec, 10, 64)
	if err != nil || usec <= 0 || usec > math.MaxInt64/int64(time.Microsecond) {
		return 0
	}
	if watchdogPID != "" {
		p, err := strconv.Atoi(watchdogPID)
		if err != nil || p != pid {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond / 2
}
