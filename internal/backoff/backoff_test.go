package backoff

import (
	"testing"
	"time"
)

func TestCappedAndJittered(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 30 * time.Second}
	ceil := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i, c := range ceil {
		c *= time.Second
		d := b.Next()
		if d < c/2 || d > c {
			t.Errorf("attempt %d: delay %s outside [%s, %s]", i, d, c/2, c)
		}
	}
	b.Reset()
	if d := b.Next(); d > time.Second {
		t.Errorf("after reset: delay %s, want <= 1s", d)
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		b.Reset()
		seen[b.Next()] = true
	}
	if len(seen) < 2 {
		t.Errorf("no jitter: %v", seen)
	}
}

func TestLongRunStaysCapped(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for i := range 20 {
		d := b.Next()
		ceiling := min(100*time.Millisecond<<i, time.Second)
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("attempt %d waits %s, want in [%s, %s]", i, d, ceiling/2, ceiling)
		}
	}
}
