package discovery

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseStatic(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Member
		errHas  string
		errKind error
	}{
		{in: "a=https://10.0.0.1:2380", want: []Member{{"a", "https://10.0.0.1:2380"}}},
		{
			in:   " a=https://10.0.0.1:2380, b=https://10.0.0.2:2380,c=https://10.0.0.3:2380 ",
			want: []Member{{"a", "https://10.0.0.1:2380"}, {"b", "https://10.0.0.2:2380"}, {"c", "https://10.0.0.3:2380"}},
		},
		{in: "", errHas: "empty"},
		{in: "a", errHas: `element "a"`},
		{in: "=https://10.0.0.1:2380", errHas: "want name=https"},
		{in: "a=", errHas: "want name=https"},
		{in: "a=https://10.0.0.1", errHas: "host:port"},
		{in: "a=10.0.0.1:2380", errHas: `check peer URL "10.0.0.1:2380"`},
		{in: "a=unix://sock:1", errHas: "scheme"},
		{in: "a=https://10.0.0.1:2380/path", errHas: "path"},
		{in: "a=https://10.0.0.1:2380,a=https://10.0.0.2:2380", errHas: `name "a" appears twice`, errKind: ErrConflict},
		{in: "a=https://10.0.0.1:2380,b=https://10.0.0.1:2380", errHas: `claimed by both "a" and "b"`, errKind: ErrConflict},
	} {
		got, err := ParseStatic(tc.in)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ParseStatic(%q) error = %v, want one containing %q", tc.in, err, tc.errHas)
			}
			if tc.errKind != nil && !errors.Is(err, tc.errKind) {
				t.Errorf("ParseStatic(%q) error %v is not %v", tc.in, err, tc.errKind)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseStatic(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseStatic(%q)[%d] = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func TestStaticBootstrap(t *testing.T) {
	const list = "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380,c=https://10.0.0.3:2380"
	members, err := ParseStatic(list)
	if err != nil {
		t.Fatal(err)
	}
	s := &Static{Members: members, Token: "tok"}
	ctx := context.Background()

	var got []Progress
	res, err := s.Bootstrap(ctx, Member{"b", "https://10.0.0.2:2380"}, func(p Progress) { got = append(got, p) })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Self || res.Token != "tok" || res.InitialCluster() != list {
		t.Errorf("Bootstrap = %+v", res)
	}
	if len(got) != 1 || got[0] != (Progress{Registered: 3, Size: 3}) {
		t.Errorf("progress = %+v", got)
	}

	for _, tc := range []struct {
		name string
		self Member
		kind error
		has  []string
	}{
		{"not listed", Member{"d", "https://10.0.0.4:2380"}, ErrNotListed, []string{list, "d=https://10.0.0.4:2380"}},
		{"name with other URL", Member{"b", "https://10.0.0.9:2380"}, ErrConflict, []string{"https://10.0.0.2:2380", "https://10.0.0.9:2380"}},
		{"URL with other name", Member{"z", "https://10.0.0.2:2380"}, ErrConflict, []string{`"b"`, `"z"`}},
	} {
		_, err := s.Bootstrap(ctx, tc.self, nil)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.kind)
			continue
		}
		for _, h := range tc.has {
			if !strings.Contains(err.Error(), h) {
				t.Errorf("%s: error %q does not name %s", tc.name, err, h)
			}
		}
	}
	if _, err := (&Static{Members: members}).Bootstrap(ctx, members[0], nil); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("empty token: err = %v", err)
	}
}
