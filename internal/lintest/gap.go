package lintest

import (
	"slices"
	"time"
)

// Stall is the longest gap between two acknowledged puts in a window of the
// writer's run, as a client sees it, and the slowest acknowledged put.
type Stall struct {
	Gap, Slowest time.Duration
	Puts         int
}

// StallBetween measures the acknowledged puts that ended between from and
// to (wall-clock times); a gap between two acknowledgements that overlaps
// the window counts whole, so a stall that starts before it or ends after
// it is seen. A figure for logs and benchmarks, not for assertions.
func (w *Writer) StallBetween(from, to time.Time) Stall {
	w.mu.Lock()
	defer w.mu.Unlock()
	lo, hi := int64(from.Sub(w.start)), int64(to.Sub(w.start))
	var ends []int64
	var s Stall
	for _, op := range w.history {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if !in.put || out.unknown {
			continue
		}
		ends = append(ends, op.Return)
		if op.Return >= lo && op.Return <= hi {
			s.Puts++
			s.Slowest = max(s.Slowest, time.Duration(op.Return-op.Call))
		}
	}
	slices.Sort(ends)
	for i := 1; i < len(ends); i++ {
		if ends[i] >= lo && ends[i-1] <= hi {
			s.Gap = max(s.Gap, time.Duration(ends[i]-ends[i-1]))
		}
	}
	return s
}
