package dnsrecords_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/dnsrecords"
	"github.com/etcd-agent/etcd-agent/agent/dnsrecords/route53test"
	"github.com/etcd-agent/etcd-agent/agent/problem"
)

const zoneID = "Z0123456789ABCDEFGHIJ"

// useCredentials gives the SDK's default chain the test credentials (and
// nothing else: no shared files, no IMDS). It sets the environment, so the
// tests using it do not run in parallel.
func useCredentials(t *testing.T, key, secret string) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func newStore(t *testing.T, srv *route53test.Server, zone string) *dnsrecords.Route53 {
	t.Helper()
	st, err := dnsrecords.NewRoute53(context.Background(), config.Route53{
		HostedZoneID: zone, Domain: "etcd.example.com", TTL: config.Duration(time.Minute), Endpoint: srv.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var members = []dnsrecords.Member{
	{Name: "etcd-10-0-1-5", ClientURLs: []string{"https://10.0.1.5:2379"}},
	{Name: "etcd-10-0-1-6", ClientURLs: []string{"https://10.0.1.6:2379"}},
	{Name: "etcd-10-0-1-7", ClientURLs: []string{"https://10.0.1.7:2379"}},
}

// TestRoute53Wire drives Route 53 through the SDK against the test server:
// the change batch arrives as the documented XML, signed (the server
// checks every signature), the listing pages and stops at the domain's
// end, and a replacement's batch leaves the record set a DNS client then
// resolves.
func TestRoute53Wire(t *testing.T) {
	useCredentials(t, route53test.AccessKey, route53test.SecretKey)
	srv := route53test.New(t)
	srv.AddZone(zoneID, "example.com")
	srv.PageSize = 2 // the SDK caller must page
	foreign := dnsrecords.RecordSet{Name: "www.example.com.", Type: "A", TTL: 300, Values: []string{"192.0.2.1"}}
	mine := dnsrecords.RecordSet{Name: "api.etcd.example.com.", Type: "CNAME", TTL: 300, Values: []string{"lb.example.com."}}
	srv.Put(zoneID, foreign)
	srv.Put(zoneID, mine)
	st := newStore(t, srv, zoneID)
	zone := dnsrecords.Zone{Domain: "etcd.example.com", TTL: 60}
	ctx := context.Background()

	apply := func(ms []dnsrecords.Member) []dnsrecords.Change {
		t.Helper()
		current, err := st.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		desired, _ := zone.Desired(ms)
		changes := zone.Plan(current, desired)
		if err := st.Apply(ctx, "test", changes); err != nil {
			t.Fatal(err)
		}
		return changes
	}
	apply(members)
	reqs := srv.Requests()
	last := reqs[len(reqs)-1]
	want := `<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes>` +
		`<Change><Action>UPSERT</Action><ResourceRecordSet><Name>etcd-10-0-1-5.etcd.example.com.</Name><ResourceRecords><ResourceRecord><Value>10.0.1.5</Value></ResourceRecord></ResourceRecords><TTL>60</TTL><Type>A</Type></ResourceRecordSet></Change>` +
		`<Change><Action>UPSERT</Action><ResourceRecordSet><Name>etcd-10-0-1-6.etcd.example.com.</Name><ResourceRecords><ResourceRecord><Value>10.0.1.6</Value></ResourceRecord></ResourceRecords><TTL>60</TTL><Type>A</Type></ResourceRecordSet></Change>` +
		`<Change><Action>UPSERT</Action><ResourceRecordSet><Name>etcd-10-0-1-7.etcd.example.com.</Name><ResourceRecords><ResourceRecord><Value>10.0.1.7</Value></ResourceRecord></ResourceRecords><TTL>60</TTL><Type>A</Type></ResourceRecordSet></Change>` +
		`<Change><Action>UPSERT</Action><ResourceRecordSet><Name>_etcd-client-ssl._tcp.etcd.example.com.</Name><ResourceRecords>` +
		`<ResourceRecord><Value>0 10 2379 etcd-10-0-1-5.etcd.example.com.</Value></ResourceRecord><ResourceRecord><Value>0 10 2379 etcd-10-0-1-6.etcd.example.com.</Value></ResourceRecord><ResourceRecord><Value>0 10 2379 etcd-10-0-1-7.etcd.example.com.</Value></ResourceRecord>` +
		`</ResourceRecords><TTL>60</TTL><Type>SRV</Type></ResourceRecordSet></Change>` +
		`</Changes><Comment>test</Comment></ChangeBatch></ChangeResourceRecordSetsRequest>`
	if last.Op != "ChangeResourceRecordSets" || last.Status != 200 || last.Body != want {
		t.Errorf("last request = %s %d %s\n%s\nwant the body\n%s", last.Op, last.Status, last.Err, last.Body, want)
	}
	for _, r := range reqs {
		if r.Err != "" {
			t.Errorf("request refused: %s: %s", r.Op, r.Err)
		}
	}
	got, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Type+" "+s.Name)
	}
	if want := []string{"SRV _etcd-client-ssl._tcp.etcd.example.com.", "CNAME api.etcd.example.com.", "A etcd-10-0-1-5.etcd.example.com.",
		"A etcd-10-0-1-6.etcd.example.com.", "A etcd-10-0-1-7.etcd.example.com."}; !slices.Equal(names, want) {
		t.Errorf("List = %q, want the domain's record sets only, in Route 53's order: %q", names, want)
	}

	lists := 0
	for _, r := range srv.Requests() {
		if r.Op == "ListResourceRecordSets" {
			lists++
		}
	}
	if lists < 2 {
		t.Errorf("%d ListResourceRecordSets requests: five record sets under the domain take pages of 2", lists)
	}

	if want := (members[0:3]); !slices.EqualFunc(got[0].Values, want, func(v string, m dnsrecords.Member) bool { return strings.Contains(v, m.Name) }) {
		t.Errorf("listed SRV values %q, want one per member", got[0].Values)
	}

	// A replacement: 10.0.1.7 removed, 10.0.1.9 promoted.
	replaced := append(slices.Clone(members[:2]), dnsrecords.Member{Name: "etcd-10-0-1-9", ClientURLs: []string{"https://10.0.1.9:2379"}})
	apply(replaced)
	if again := apply(replaced); len(again) != 0 {
		t.Errorf("in step, yet planned %v", again)
	}
	sets := srv.Sets(zoneID)
	if !slices.ContainsFunc(sets, func(s dnsrecords.RecordSet) bool { return s.Name == foreign.Name }) ||
		!slices.ContainsFunc(sets, func(s dnsrecords.RecordSet) bool { return s.Name == mine.Name }) {
		t.Errorf("other records were touched: %v", sets)
	}
	dns := srv.ServeDNS(t, zoneID)
	_, srvs, err := dns.Resolver().LookupSRV(ctx, "etcd-client-ssl", "tcp", "etcd.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, s := range srvs {
		addrs, err := dns.Resolver().LookupHost(ctx, s.Target)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, fmt.Sprintf("%s:%s:%d", s.Target, strings.Join(addrs, ","), s.Port))
	}
	slices.Sort(targets)
	if want := []string{"etcd-10-0-1-5.etcd.example.com.:10.0.1.5:2379", "etcd-10-0-1-6.etcd.example.com.:10.0.1.6:2379", "etcd-10-0-1-9.etcd.example.com.:10.0.1.9:2379"}; !slices.Equal(targets, want) {
		t.Errorf("resolved %q, want %q", targets, want)
	}
	if _, err := dns.Resolver().LookupHost(ctx, "etcd-10-0-1-7.etcd.example.com"); !isNotFound(err) {
		t.Errorf("the removed member's name resolves: %v", err)
	}
}

func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// TestRoute53Errors: each of Route 53's documented refusals is the problem
// status shows, with its fix; a wrong secret fails the server's signature
// check.
func TestRoute53Errors(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		zone    string
		deny    string
		changes []dnsrecords.Change
		want    problem.Kind
		wantMsg string
	}{
		{name: "zone missing", zone: "Z9999999999999999999", want: problem.DNSZoneMissing, wantMsg: "No hosted zone found with ID: Z9999999999999999999"},
		{name: "listing denied", deny: "ListResourceRecordSets", want: problem.DNSAccessDenied, wantMsg: "not authorized to perform: route53:ListResourceRecordSets"},
		{
			name: "change denied", deny: "ChangeResourceRecordSets", want: problem.DNSAccessDenied, wantMsg: "not authorized to perform: route53:ChangeResourceRecordSets",
			changes: []dnsrecords.Change{{Action: dnsrecords.Upsert, Set: dnsrecords.RecordSet{Name: "a.etcd.example.com.", Type: "A", TTL: 60, Values: []string{"10.0.1.5"}}}},
		},
		{
			name: "batch refused", want: problem.DNSChangeRefused, wantMsg: "Tried to delete resource record set [name='a.etcd.example.com.', type='A'] but it was not found",
			changes: []dnsrecords.Change{{Action: dnsrecords.Delete, Set: dnsrecords.RecordSet{Name: "a.etcd.example.com.", Type: "A", TTL: 60, Values: []string{"10.0.1.5"}}}},
		},
		{
			name: "name outside the zone", want: problem.DNSChangeRefused, wantMsg: "RRSet with DNS name a.example.org. is not permitted in zone example.com.",
			changes: []dnsrecords.Change{{Action: dnsrecords.Upsert, Set: dnsrecords.RecordSet{Name: "a.example.org.", Type: "A", TTL: 60, Values: []string{"10.0.1.5"}}}},
		},
		{name: "wrong secret", secret: "not-the-secret", want: problem.DNSRecordsFailed, wantMsg: "SignatureDoesNotMatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := route53test.SecretKey
			if tt.secret != "" {
				secret = tt.secret
			}
			useCredentials(t, route53test.AccessKey, secret)
			srv := route53test.New(t)
			srv.AddZone(zoneID, "example.com")
			if tt.deny != "" {
				srv.Deny(tt.deny)
			}
			zone := zoneID
			if tt.zone != "" {
				zone = tt.zone
			}
			st := newStore(t, srv, zone)
			var err error
			if tt.changes != nil {
				err = st.Apply(context.Background(), "test", tt.changes)
			} else {
				_, err = st.List(context.Background())
			}
			var e *dnsrecords.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want a *dnsrecords.Error", err)
			}
			p := e.Problem()
			if p.Code != tt.want.Code || !strings.Contains(p.Text, tt.wantMsg) || p.Fix == "" {
				t.Errorf("problem = %+v, want %s naming %q with a fix", p, tt.want.Code, tt.wantMsg)
			}
			t.Logf("%s: %s (fix: %s)", p.Code, p.Text, p.Fix)
		})
	}
}
