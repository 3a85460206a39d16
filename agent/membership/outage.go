package membership

import "time"

// How long a member has been down is measured by the node that would remove
// it: a run of its own failed probes. Nothing else shortens the wait: a
// heartbeat can only prove a member alive, never that it has been dead long.

// Probe is one observation of a member by this node.
type Probe struct {
	ID       uint64
	At       time.Time
	Answered bool
}

// Outage is a member's current run of failed probes as this node saw them.
type Outage struct {
	Since time.Time // first failed probe of the run
	Last  time.Time // latest failed probe of the run
	// Paused is how much of the run this node did not probe on purpose
	// (Pause): it does not count as down.
	Paused time.Duration
}

// Down is how long the run spans, without its pauses.
func (o Outage) Down() time.Duration { return o.Last.Sub(o.Since) - o.Paused }

// TrackOutages folds one round of probes into the outages seen so far and
// returns the new set (prev is not modified). A member that answered has no
// outage. A run is broken, and starts again at this probe, when the previous
// failed probe is more than maxGap ago (this node was not watching, e.g. it
// was frozen itself) or when the member's heartbeat shows it alive after the
// run began. Members not probed in this round drop out.
func TrackOutages(prev map[uint64]Outage, round []Probe, heartbeats map[uint64]time.Time, maxGap time.Duration) map[uint64]Outage {
	next := make(map[uint64]Outage, len(round))
	for _, p := range round {
		if p.Answered {
			continue
		}
		o, ok := prev[p.ID]
		switch {
		case !ok, p.At.Sub(o.Last) > maxGap, p.At.Before(o.Last):
			o = Outage{Since: p.At, Last: p.At}
		case heartbeats[p.ID].After(o.Since):
			// Alive after the run began: only failed probes after the
			// heartbeat count, starting with this one.
			o = Outage{Since: p.At, Last: p.At}
		default:
			o.Last = p.At
		}
		next[p.ID] = o
	}
	return next
}

// Pause records that this node did not probe for d on purpose (a snapshot
// it took before a change) and returns the new set (prev is not modified).
// A pause neither breaks a run nor counts toward it: the next failed probe
// continues the run unless a heartbeat shows the member alive since the run
// began, and the time paused is not time seen down.
func Pause(prev map[uint64]Outage, d time.Duration) map[uint64]Outage {
	next := make(map[uint64]Outage, len(prev))
	for id, o := range prev {
		o.Last = o.Last.Add(d)
		o.Paused += d
		next[id] = o
	}
	return next
}
