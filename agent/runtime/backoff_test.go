package runtime

import (
	"testing"
	"time"
)

func TestBackoffIsCappedAndJittered(t *testing.T) {
	b := backoff{min: time.Second, max: 30 * time.Second}
	ceil := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i, c := range ceil {
		c *= time.Second
		d := b.next()
		if d < c/2 || d > c {
			t.Errorf("attempt %d: delay %s outside [%s, %s]", i, d, c/2, c)
		}
	}
	b.reset()
	if d := b.next(); d > time.Second {
		t.Errorf("after reset: delay %s, want <= 1s", d)
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		b.reset()
		seen[b.next()] = true
	}
	if len(seen) < 2 {
		t.Errorf("no jitter: %v", seen)
	}
}
