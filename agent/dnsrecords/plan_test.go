package dnsrecords

import (
	"slices"
	"strings"
	"testing"
)

var zone = Zone{Domain: "etcd.example.com", TTL: 60}

func voter(name, url string) Member { return Member{Name: name, ClientURLs: []string{url}} }

func srv(ttl int64, values ...string) RecordSet {
	return RecordSet{Name: "_etcd-client-ssl._tcp.etcd.example.com.", Type: TypeSRV, TTL: ttl, Values: values}
}

func a(name, ip string) RecordSet {
	return RecordSet{Name: name + ".etcd.example.com.", Type: TypeA, TTL: 60, Values: []string{ip}}
}

func TestDesired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		members     []Member
		want        []RecordSet
		wantSkipped []string
	}{
		{
			name: "one SRV value and one A record per voter",
			members: []Member{
				voter("etcd-10-0-1-6", "https://10.0.1.6:2379"), voter("etcd-10-0-1-5", "https://10.0.1.5:2379"),
			},
			want: []RecordSet{
				a("etcd-10-0-1-6", "10.0.1.6"), a("etcd-10-0-1-5", "10.0.1.5"),
				srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.", "0 10 2379 etcd-10-0-1-6.etcd.example.com."),
			},
		},
		{
			name: "learner left out until promoted",
			members: []Member{
				voter("etcd-10-0-1-5", "https://10.0.1.5:2379"),
				{Name: "etcd-10-0-1-7", ClientURLs: []string{"https://10.0.1.7:2379"}, Learner: true},
			},
			want: []RecordSet{a("etcd-10-0-1-5", "10.0.1.5"), srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.")},
		},
		{
			name: "unstarted member and plain http URL skipped",
			members: []Member{
				voter("etcd-10-0-1-5", "https://10.0.1.5:2379"), {Name: ""}, voter("etcd-10-0-1-8", "http://10.0.1.8:2379"),
			},
			want:        []RecordSet{a("etcd-10-0-1-5", "10.0.1.5"), srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.")},
			wantSkipped: []string{"", "etcd-10-0-1-8"},
		},
		{
			name:    "host name URL is the target as it is",
			members: []Member{voter("n1", "https://ip-10-0-1-5.ec2.internal:2379")},
			want:    []RecordSet{srv(60, "0 10 2379 ip-10-0-1-5.ec2.internal.")},
		},
		{
			name:    "IPv6 gets AAAA, odd member names a valid label",
			members: []Member{voter("Node_1.x", "https://[fd00::5]:2379")},
			want: []RecordSet{
				{Name: "node-1-x.etcd.example.com.", Type: TypeAAAA, TTL: 60, Values: []string{"fd00::5"}},
				srv(60, "0 10 2379 node-1-x.etcd.example.com."),
			},
		},
		{
			name:    "no voters: nothing desired",
			members: []Member{{Name: "l", ClientURLs: []string{"https://10.0.1.9:2379"}, Learner: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := zone.Desired(tt.members)
			if !slices.EqualFunc(got, tt.want, RecordSet.equal) {
				t.Errorf("Desired =\n%v\nwant\n%v", got, tt.want)
			}
			if !slices.Equal(skipped, tt.wantSkipped) {
				t.Errorf("skipped = %q, want %q", skipped, tt.wantSkipped)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	three := []RecordSet{
		a("etcd-10-0-1-5", "10.0.1.5"), a("etcd-10-0-1-6", "10.0.1.6"), a("etcd-10-0-1-7", "10.0.1.7"),
		srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.", "0 10 2379 etcd-10-0-1-6.etcd.example.com.", "0 10 2379 etcd-10-0-1-7.etcd.example.com."),
	}
	replaced := []RecordSet{
		a("etcd-10-0-1-5", "10.0.1.5"), a("etcd-10-0-1-6", "10.0.1.6"), a("etcd-10-0-1-9", "10.0.1.9"),
		srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.", "0 10 2379 etcd-10-0-1-6.etcd.example.com.", "0 10 2379 etcd-10-0-1-9.etcd.example.com."),
	}
	foreign := RecordSet{Name: "www.etcd.example.com.", Type: TypeA, TTL: 300, Values: []string{"10.9.9.9"}}
	outside := a("etcd-10-0-1-7", "10.0.1.7")
	outside.Name = "etcd-10-0-1-7.example.org."
	tests := []struct {
		name             string
		current, desired []RecordSet
		want             []string
	}{
		{name: "in step: no change", current: three, desired: three},
		{
			name: "empty zone: everything upserted", desired: three,
			want: []string{
				"UPSERT etcd-10-0-1-5.etcd.example.com. 60 A [10.0.1.5]", "UPSERT etcd-10-0-1-6.etcd.example.com. 60 A [10.0.1.6]",
				"UPSERT etcd-10-0-1-7.etcd.example.com. 60 A [10.0.1.7]",
				"UPSERT _etcd-client-ssl._tcp.etcd.example.com. 60 SRV [0 10 2379 etcd-10-0-1-5.etcd.example.com., 0 10 2379 etcd-10-0-1-6.etcd.example.com., 0 10 2379 etcd-10-0-1-7.etcd.example.com.]",
			},
		},
		{
			name: "replacement: new member upserted, removed member's A deleted, in one batch", current: three, desired: replaced,
			want: []string{
				"UPSERT etcd-10-0-1-9.etcd.example.com. 60 A [10.0.1.9]",
				"UPSERT _etcd-client-ssl._tcp.etcd.example.com. 60 SRV [0 10 2379 etcd-10-0-1-5.etcd.example.com., 0 10 2379 etcd-10-0-1-6.etcd.example.com., 0 10 2379 etcd-10-0-1-9.etcd.example.com.]",
				"DELETE etcd-10-0-1-7.etcd.example.com. 60 A [10.0.1.7]",
			},
		},
		{
			name: "others' records under the domain stay", current: append(slices.Clone(three), foreign), desired: three,
		},
		{
			name: "TTL change upserts", current: three, desired: append(slices.Clone(three[:3]), srv(30, three[3].Values...)),
			want: []string{"UPSERT _etcd-client-ssl._tcp.etcd.example.com. 30 SRV [0 10 2379 etcd-10-0-1-5.etcd.example.com., 0 10 2379 etcd-10-0-1-6.etcd.example.com., 0 10 2379 etcd-10-0-1-7.etcd.example.com.]"},
		},
		{
			name: "a member's new IP upserts its A only", current: three,
			desired: append([]RecordSet{a("etcd-10-0-1-5", "10.0.1.5"), a("etcd-10-0-1-6", "10.0.1.6"), a("etcd-10-0-1-7", "10.0.2.7")}, three[3]),
			want:    []string{"UPSERT etcd-10-0-1-7.etcd.example.com. 60 A [10.0.2.7]"},
		},
		{
			name:    "a target outside the domain is never deleted",
			current: []RecordSet{outside, srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.", "0 10 2379 etcd-10-0-1-7.example.org.")},
			desired: []RecordSet{a("etcd-10-0-1-5", "10.0.1.5"), srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.")},
			want: []string{
				"UPSERT etcd-10-0-1-5.etcd.example.com. 60 A [10.0.1.5]",
				"UPSERT _etcd-client-ssl._tcp.etcd.example.com. 60 SRV [0 10 2379 etcd-10-0-1-5.etcd.example.com.]",
			},
		},
		{name: "no voters: nothing withdrawn", current: three, desired: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := changeStrings(zone.Plan(tt.current, tt.desired)); !slices.Equal(got, tt.want) {
				t.Errorf("Plan =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestWithdraw(t *testing.T) {
	t.Parallel()
	two := []RecordSet{
		a("etcd-10-0-1-5", "10.0.1.5"), a("etcd-10-0-1-6", "10.0.1.6"),
		srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.", "0 10 2379 etcd-10-0-1-6.etcd.example.com."),
	}
	tests := []struct {
		name    string
		current []RecordSet
		self    Member
		want    []string
	}{
		{
			name: "its value and A record go, the others stay", current: two, self: voter("etcd-10-0-1-6", "https://10.0.1.6:2379"),
			want: []string{
				"UPSERT _etcd-client-ssl._tcp.etcd.example.com. 60 SRV [0 10 2379 etcd-10-0-1-5.etcd.example.com.]",
				"DELETE etcd-10-0-1-6.etcd.example.com. 60 A [10.0.1.6]",
			},
		},
		{
			name: "the last value deletes the SRV set", current: []RecordSet{two[0], srv(60, "0 10 2379 etcd-10-0-1-5.etcd.example.com.")},
			self: voter("etcd-10-0-1-5", "https://10.0.1.5:2379"),
			want: []string{
				"DELETE etcd-10-0-1-5.etcd.example.com. 60 A [10.0.1.5]",
				"DELETE _etcd-client-ssl._tcp.etcd.example.com. 60 SRV [0 10 2379 etcd-10-0-1-5.etcd.example.com.]",
			},
		},
		{name: "already withdrawn: nothing", current: two, self: voter("etcd-10-0-1-9", "https://10.0.1.9:2379")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := changeStrings(zone.Withdraw(tt.current, tt.self)); !slices.Equal(got, tt.want) {
				t.Errorf("Withdraw =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	got := Normalize(RecordSet{Name: "_etcd-client-ssl._tcp.Etcd.Example.com", Type: TypeSRV, TTL: 60,
		Values: []string{"0 10 2379 B.etcd.example.com", "0 10 2379 a.etcd.example.com."}})
	want := srv(60, "0 10 2379 a.etcd.example.com.", "0 10 2379 b.etcd.example.com.")
	if !got.equal(want) {
		t.Errorf("Normalize = %v, want %v", got, want)
	}
}

func changeStrings(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}
