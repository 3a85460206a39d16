package maintenance

import "time"

// Revisions remembers which revision the cluster was at when, so that a
// compaction "up to the retention" can find the newest revision at least
// the retention old (etcd keeps no such index; its periodic compactor
// samples the same way).
type Revisions struct {
	samples []sample
}

type sample struct {
	at  time.Time
	rev int64
}

// Add records that the cluster was at rev at time at, and forgets samples
// no longer needed for a retention of keep.
func (r *Revisions) Add(at time.Time, rev int64, keep time.Duration) {
	r.samples = append(r.samples, sample{at, rev})
	// Keep the newest sample older than the retention, and all newer ones.
	cut := 0
	for i, s := range r.samples {
		if at.Sub(s.at) >= keep {
			cut = i
		}
	}
	r.samples = r.samples[cut:]
}

// Target is the newest revision recorded at least retention before now
// (0: none is that old yet).
func (r *Revisions) Target(now time.Time, retention time.Duration) int64 {
	var rev int64
	for _, s := range r.samples {
		if now.Sub(s.at) >= retention {
			rev = s.rev
		}
	}
	return rev
}
