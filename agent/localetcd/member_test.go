package localetcd

import (
	"slices"
	"testing"
)

func TestFollowEndpoints(t *testing.T) {
	const (
		self = "https://10.0.1.3:2379"
		n1   = "https://10.0.1.1:2379"
		n2   = "https://10.0.1.2:2379"
		n4   = "https://10.0.1.4:2379"
		n5   = "https://10.0.1.5:2379"
	)
	for _, tc := range []struct {
		name              string
		current, recorded []string
		want              []string // nil: keep the client's endpoints
	}{
		{"an instance refresh replaced both other founders", []string{n1, n2}, []string{n4, n5, self}, []string{n4, n5}},
		{"one member replaced", []string{n1, n2}, []string{n2, self, n4}, []string{n2, n4}},
		{"the same members, another order", []string{n2, n1}, []string{self, n1, n2}, nil},
		{"nothing recorded", []string{n1, n2}, nil, nil},
		{"only this node recorded", []string{n1, n2}, []string{self}, nil},
		{"a URL recorded twice (a member's two client URLs)", []string{n1}, []string{n4, n4}, []string{n4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := followEndpoints(tc.current, tc.recorded, self)
			if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
				t.Errorf("followEndpoints(%v, %v) = %v, %v; want %v", tc.current, tc.recorded, got, ok, tc.want)
			}
		})
	}
}
