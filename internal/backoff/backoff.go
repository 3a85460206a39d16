// Package backoff is the capped, jittered exponential delay the agent's
// retries share (etcd restarts, discovery, membership changes).
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff doubles from Min up to Max: attempt n waits a random duration in
// [d/2, d] with d = min(Min*2^n, Max). The jitter keeps nodes that failed
// together from retrying in lockstep. The zero value needs Min and Max set.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns how long to wait before the next attempt, and advances.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	b.n++
	return d/2 + rand.N(d/2+1)
}

// Reset starts over at Min, after a success.
func (b *Backoff) Reset() { b.n = 0 }
