package lintest

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestStallBetween(t *testing.T) {
	start := time.Now()
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	put := func(call, ret int, unknown bool) porcupine.Operation {
		return porcupine.Operation{Input: regInput{put: true}, Call: ms(call), Return: ms(ret), Output: regOutput{unknown: unknown}}
	}
	w := &Writer{start: start, history: []porcupine.Operation{
		put(0, 10, false), put(10, 20, false),
		put(20, 900, true), // ambiguous: no acknowledgement
		put(20, 700, false), put(700, 710, false),
		{Input: regInput{}, Call: ms(710), Return: ms(720), Output: regOutput{}}, // a get
		put(710, 2000, false),
	}}
	at := func(n int) time.Time { return start.Add(time.Duration(n) * time.Millisecond) }
	if s := w.StallBetween(at(100), at(705)); s.Gap != 680*time.Millisecond || s.Puts != 1 || s.Slowest != 680*time.Millisecond {
		t.Errorf("window 100-705ms: %+v, want gap 680ms (20 → 700), 1 put, slowest 680ms", s)
	}
	// A gap that overlaps the window counts whole.
	if s := w.StallBetween(at(100), at(800)); s.Gap != 1290*time.Millisecond || s.Puts != 2 {
		t.Errorf("window 100-800ms: %+v, want gap 1.29s (710 → 2000), 2 puts", s)
	}
	if s := w.StallBetween(at(0), at(2000)); s.Gap != 1290*time.Millisecond || s.Puts != 5 {
		t.Errorf("whole run: %+v, want gap 1.29s (710 → 2000), 5 puts", s)
	}
}
