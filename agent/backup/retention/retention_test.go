package retention

import (
	"slices"
	"testing"
	"time"
)

// every returns snapshots every step from start for n steps, named by time.
func every(start time.Time, step time.Duration, n int) []Snapshot {
	var s []Snapshot
	for i := range n {
		t := start.Add(time.Duration(i) * step)
		s = append(s, Snapshot{Name: t.Format("01-02T15:04"), Time: t})
	}
	return s
}

func names(s []Snapshot) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Name
	}
	return out
}

func TestKeep(t *testing.T) {
	// Wednesday 2026-12-02 12:10 UTC.
	now := time.Date(2026, 12, 2, 12, 10, 0, 0, time.UTC)
	halfHourly := every(now.Add(-60*24*time.Hour), 30*time.Minute, 60*48)
	cases := []struct {
		name    string
		snaps   []Snapshot
		policy  Policy
		protect []string
		want    []string // kept, oldest first; nil: check count only
		count   int
	}{
		{name: "nothing", policy: Policy{24, 7, 4}},
		{name: "one old snapshot is the newest: kept", snaps: every(now.Add(-90*24*time.Hour), time.Hour, 1), policy: Policy{1, 1, 1}, want: []string{"09-03T12:10"}},
		{name: "hourly only: the newest of each of the last 3 hours",
			snaps: every(now.Add(-5*time.Hour), 20*time.Minute, 16), policy: Policy{Hourly: 3},
			want: []string{"12-02T10:50", "12-02T11:50", "12-02T12:10"}},
		{name: "daily only: the newest of today and the 2 days before",
			snaps: every(now.Add(-5*24*time.Hour), 6*time.Hour, 21), policy: Policy{Daily: 3},
			want: []string{"11-30T18:10", "12-01T18:10", "12-02T12:10"}},
		{name: "weekly: ISO weeks start on Monday",
			snaps: every(now.Add(-21*24*time.Hour), 24*time.Hour, 22), policy: Policy{Weekly: 2},
			want: []string{"11-29T12:10", "12-02T12:10"}}, // Sunday ends last week
		// The newest is at 11:40 (none yet in the 12:00 hour): 23 hourly,
		// days 11-26…11-30 (12-01 and 12-02 are among the hourly), weeks
		// of 11-16 and 11-09 (this and last week's are among the daily).
		{name: "60 days of half-hourly snapshots, 24/7/4: dense then sparse",
			snaps: halfHourly, policy: Policy{24, 7, 4}, count: 23 + 5 + 2},
		{name: "protected old snapshot survives",
			snaps: every(now.Add(-5*time.Hour), time.Hour, 6), policy: Policy{Hourly: 1}, protect: []string{"12-02T07:10"},
			want: []string{"12-02T07:10", "12-02T12:10"}},
		{name: "all counts off: only the newest",
			snaps: every(now.Add(-5*time.Hour), time.Hour, 6), policy: Policy{-1, -1, -1}, want: []string{"12-02T12:10"}},
		{name: "a snapshot from the future (clock skew) is the newest: kept",
			snaps: append(every(now.Add(-2*time.Hour), time.Hour, 3), Snapshot{"skewed", now.Add(time.Hour)}), policy: Policy{Hourly: 1},
			want: []string{"12-02T12:10", "skewed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keep, drop := Keep(c.snaps, c.policy, now, c.protect...)
			if len(keep)+len(drop) != len(c.snaps) {
				t.Fatalf("keep %d + drop %d != %d", len(keep), len(drop), len(c.snaps))
			}
			got := names(keep)
			if c.want != nil && !slices.Equal(got, c.want) {
				t.Errorf("kept %v, want %v", got, c.want)
			}
			if c.count != 0 && len(got) != c.count {
				t.Errorf("kept %d: %v, want %d", len(got), got, c.count)
			}
		})
	}
}

// TestKeepIsStable: applying retention to what it kept changes nothing, so
// agents that prune the same store one after another agree.
func TestKeepIsStable(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 10, 0, 0, time.UTC)
	snaps := every(now.Add(-40*24*time.Hour), 45*time.Minute, 40*32)
	p := Policy{24, 7, 4}
	keep, _ := Keep(snaps, p, now)
	again, drop := Keep(keep, p, now)
	if len(drop) != 0 || !slices.Equal(names(again), names(keep)) {
		t.Fatalf("second pass dropped %v", names(drop))
	}
	if len(keep) < 24 {
		t.Fatalf("kept only %d", len(keep))
	}
}
