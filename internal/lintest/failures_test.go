package lintest

import "testing"

func TestTermAround(t *testing.T) {
	terms := []termAt{{at: 10, term: 2}, {at: 20, term: 2}, {at: 55, term: 3}, {at: 60, term: 3}}
	for _, tc := range []struct {
		name          string
		call, ret     int64
		before, after uint64
	}{
		{"spans a leader change", 25, 50, 2, 3},
		{"no change around it", 12, 18, 2, 2},
		{"nothing seen before", 5, 8, 0, 2},
		{"nothing seen after", 61, 70, 3, 0},
	} {
		before, after := termAround(terms, tc.call, tc.ret)
		if before != tc.before || after != tc.after {
			t.Errorf("%s: termAround(%d, %d) = %d, %d; want %d, %d", tc.name, tc.call, tc.ret, before, after, tc.before, tc.after)
		}
	}
}
