package membership

import (
	"testing"
	"time"
)

func TestTrackOutages(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const gap = 10 * time.Second
	type round struct {
		at       int
		answered bool
		beat     int // heartbeat second, -1 none
	}
	tests := []struct {
		name   string
		rounds []round
		want   time.Duration // Down() after the last round; -1: no outage
	}{
		{"never failed", []round{{0, true, -1}, {5, true, -1}}, -1},
		{"one failed probe is no time down", []round{{0, false, -1}}, 0},
		{"a sustained run counts from its first failure", []round{{0, false, -1}, {5, false, -1}, {10, false, -1}}, 10 * time.Second},
		{"an answer ends the run", []round{{0, false, -1}, {5, true, -1}, {10, false, -1}}, 0},
		{"a gap in watching starts the run again", []round{{0, false, -1}, {5, false, -1}, {60, false, -1}, {65, false, -1}}, 5 * time.Second},
		{"a stale heartbeat never lengthens the outage", []round{{100, false, 1}, {105, false, 1}}, 5 * time.Second},
		{"a heartbeat after the run began proves life", []round{{0, false, -1}, {5, false, -1}, {10, false, 7}, {15, false, 7}}, 5 * time.Second},
		{"a clock going back starts again", []round{{10, false, -1}, {5, false, -1}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var outages map[uint64]Outage
			for _, r := range tt.rounds {
				beats := map[uint64]time.Time{}
				if r.beat >= 0 {
					beats[3] = at(r.beat)
				}
				outages = TrackOutages(outages, []Probe{{ID: 3, At: at(r.at), Answered: r.answered}, {ID: 1, At: at(r.at), Answered: true}}, beats, gap)
			}
			if _, ok := outages[1]; ok {
				t.Fatal("a member that answered has an outage")
			}
			o, ok := outages[3]
			switch {
			case tt.want < 0 && ok:
				t.Fatalf("outage %+v, want none", o)
			case tt.want >= 0 && !ok:
				t.Fatal("no outage")
			case ok && o.Down() != tt.want:
				t.Fatalf("down %s, want %s", o.Down(), tt.want)
			}
		})
	}
}
