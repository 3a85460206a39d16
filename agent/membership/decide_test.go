package membership

import (
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	a := Member{"etcd-10-0-0-1", "https://10.0.0.1:2380"}
	b := Member{"etcd-10-0-0-2", "https://10.0.0.2:2380"}
	c := Member{"etcd-10-0-0-3", "https://10.0.0.3:2380"}
	d := Member{"etcd-10-0-0-4", "https://10.0.0.4:2380"}
	cases := []struct {
		name      string
		facts     Facts
		wantPath  Path
		wantIC    string
		wantState string
		wantErr   string
	}{
		{name: "data present restarts without discovery", facts: Facts{HasData: true, Self: a}, wantPath: Restart},
		{name: "data present ignores a discovery answer", facts: Facts{HasData: true, Self: d, Discovered: []Member{a, b, c}}, wantPath: Restart},
		{name: "founding member bootstraps", facts: Facts{Self: b, Discovered: []Member{a, b, c}, Token: "t"},
			wantPath: Bootstrap, wantState: "new",
			wantIC: "etcd-10-0-0-1=https://10.0.0.1:2380,etcd-10-0-0-2=https://10.0.0.2:2380,etcd-10-0-0-3=https://10.0.0.3:2380"},
		{name: "member with two peer URLs", facts: Facts{Self: a, Discovered: []Member{a, {"plain", "https://10.0.0.7:2380,https://10.0.0.8:2380"}}},
			wantPath: Bootstrap, wantState: "new",
			wantIC: "etcd-10-0-0-1=https://10.0.0.1:2380,plain=https://10.0.0.7:2380,plain=https://10.0.0.8:2380"},
		{name: "a node outside the founders never bootstraps", facts: Facts{Self: d, Discovered: []Member{a, b, c}, Token: "t"}, wantErr: "must join, not bootstrap"},
		{name: "no data and no discovery is a bug", facts: Facts{Self: a}, wantErr: "no discovery result"},
		{name: "two nodes one name", facts: Facts{Self: a,
			Discovered: []Member{a, {a.Name, "https://10.0.0.9:2380"}, c}}, wantErr: `two nodes claim the name "etcd-10-0-0-1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := Decide(tc.facts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Path != tc.wantPath || d.InitialCluster != tc.wantIC || d.InitialClusterState != tc.wantState {
				t.Errorf("got %+v", d)
			}
			if d.Reason == "" {
				t.Error("decision has no reason")
			}
		})
	}
}
