package certs

import (
	"testing"
	"time"
)

func TestCertCheckInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		renewBefore time.Duration
		want        time.Duration
	}{
		{"default 30d: hourly", 30 * 24 * time.Hour, time.Hour},
		{"4h: hourly", 4 * time.Hour, time.Hour},
		{"1h: every 15m", time.Hour, 15 * time.Minute},
		{"2m: every 30s", 2 * time.Minute, 30 * time.Second},
		{"10s: floor", 10 * time.Second, 5 * time.Second},
		{"zero: floor", 0, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckEvery(tc.renewBefore); got != tc.want {
				t.Errorf("CheckEvery(%v) = %v, want %v", tc.renewBefore, got, tc.want)
			}
		})
	}
}
