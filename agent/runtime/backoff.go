package runtime

import (
	"math/rand/v2"
	"time"
)

// backoff is a capped exponential delay with full jitter in [d/2, d].
type backoff struct {
	min, max time.Duration
	attempt  int
}

// next returns the delay before the next attempt and advances.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.attempt++
	half := d / 2
	return half + rand.N(half+1)
}

// reset starts over at the minimum delay.
func (b *backoff) reset() { b.attempt = 0 }
