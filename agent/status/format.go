package status

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxCellError keeps an error in the HEALTH column to one screen width; the
// full text is under Problems and in the JSON.
const maxCellError = 60

func healthCell(e Endpoint) string {
	if e.Healthy {
		return "ok " + strconv.FormatFloat(e.HealthLatencyMS, 'f', 1, 64) + "ms"
	}
	msg := e.Error
	if r := []rune(msg); len(r) > maxCellError {
		msg = string(r[:maxCellError-1]) + "…"
	}
	return "error: " + msg
}

// dbCell is "size / quota pct", e.g. "20KiB / 4GiB 0%".
func dbCell(e Endpoint) string {
	if e.DBSize == 0 {
		return "-"
	}
	if e.Quota <= 0 {
		return humanBytes(e.DBSize)
	}
	return fmt.Sprintf("%s / %s %.0f%%", humanBytes(e.DBSize), humanBytes(e.Quota), float64(e.DBSize)*100/float64(e.Quota))
}

// humanBytes prints n in binary units: "20KiB", "1.5MiB", "4GiB".
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d%s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}

// stamp prints t as a time of day when it is on now's date (UTC), with the
// date otherwise.
func stamp(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Format(time.DateOnly) == now.Format(time.DateOnly) {
		return t.Format(time.TimeOnly)
	}
	return t.Format("2006-01-02 15:04")
}

// age prints a duration to the second, never negative.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

func num(n uint64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatUint(n, 10)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinNonEmpty(sep string, parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, sep)
}
