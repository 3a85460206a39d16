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

func TestPause(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const gap = 10 * time.Second
	probe := func(s int) []Probe { return []Probe{{ID: 3, At: at(s), Answered: false}} }
	tests := []struct {
		name string
		beat int // heartbeat second, -1 none
		want time.Duration
	}{
		// Failed probes at 0 and 5, a pause of 120s, a failed probe at 127:
		// the run goes on, and the pause does not count.
		{"a pause neither breaks a run nor counts", -1, 7 * time.Second},
		{"a heartbeat during the pause proves life", 60, 0},
		{"a heartbeat before the run changes nothing", -10, 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			beats := map[uint64]time.Time{}
			if tt.beat != -1 {
				beats[3] = at(tt.beat)
			}
			o := TrackOutages(nil, probe(0), nil, gap)
			o = TrackOutages(o, probe(5), nil, gap)
			before := o[3]
			paused := Pause(o, 120*time.Second)
			if o[3] != before {
				t.Fatal("Pause modified its input")
			}
			o = TrackOutages(paused, probe(127), beats, gap)
			if got := o[3].Down(); got != tt.want {
				t.Fatalf("down %s, want %s", got, tt.want)
			}
		})
	}
	// Without the pause the same probes start the run again.
	o := TrackOutages(TrackOutages(TrackOutages(nil, probe(0), nil, gap), probe(5), nil, gap), probe(127), nil, gap)
	if got := o[3].Down(); got != 0 {
		t.Fatalf("unpaused gap: down %s, want 0", got)
	}
}
