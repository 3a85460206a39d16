// Package retention decides which snapshots to keep: recent history dense,
// older history sparse. It is a pure function of the snapshots' times, the
// policy and the clock, table-tested without any store.
package retention

import (
	"slices"
	"time"
)

// Policy keeps the newest snapshot in each of the last Hourly hours, Daily
// days and Weekly ISO weeks (UTC), counting back from now; a snapshot may
// fill several of these. A count of 0 or less keeps none of that kind. The
// newest snapshot is always kept.
type Policy struct {
	Hourly, Daily, Weekly int
}

// Snapshot is what retention needs to know of one snapshot.
type Snapshot struct {
	Name string
	Time time.Time
}

// Keep splits snapshots into those to keep and those to delete (both
// oldest first). Names in protect are always kept (e.g. the newest
// verified snapshot, so a run of broken ones never deletes the last good).
func Keep(snaps []Snapshot, p Policy, now time.Time, protect ...string) (keep, drop []Snapshot) {
	sorted := slices.Clone(snaps)
	slices.SortStableFunc(sorted, func(a, b Snapshot) int { return a.Time.Compare(b.Time) })
	kept := map[string]bool{}
	for _, n := range protect {
		kept[n] = true
	}
	if n := len(sorted); n > 0 {
		kept[sorted[n-1].Name] = true
	}
	now = now.UTC()
	for _, b := range []struct {
		count  int
		bucket func(time.Time) time.Time
		step   func(time.Time, int) time.Time
	}{
		{p.Hourly, func(t time.Time) time.Time { return t.Truncate(time.Hour) }, func(t time.Time, n int) time.Time { return t.Add(time.Duration(-n) * time.Hour) }},
		{p.Daily, day, func(t time.Time, n int) time.Time { return t.AddDate(0, 0, -n) }},
		{p.Weekly, week, func(t time.Time, n int) time.Time { return t.AddDate(0, 0, -7*n) }},
	} {
		if b.count <= 0 {
			continue
		}
		// The oldest bucket still kept: count buckets back, this one included.
		oldest := b.step(b.bucket(now), b.count-1)
		newestIn := map[time.Time]string{}
		for _, s := range sorted { // oldest first: the last write wins
			if k := b.bucket(s.Time.UTC()); !k.Before(oldest) {
				newestIn[k] = s.Name
			}
		}
		for _, name := range newestIn {
			kept[name] = true
		}
	}
	for _, s := range sorted {
		if kept[s.Name] {
			keep = append(keep, s)
		} else {
			drop = append(drop, s)
		}
	}
	return keep, drop
}

func day(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// week is the Monday that starts t's ISO week.
func week(t time.Time) time.Time {
	d := day(t)
	back := (int(d.Weekday()) + 6) % 7 // Monday 0 … Sunday 6
	return d.AddDate(0, 0, -back)
}
