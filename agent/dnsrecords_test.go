package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/dnsrecords"
	"github.com/etcd-agent/etcd-agent/agent/dnsrecords/route53test"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/pki"
)

const (
	testZoneID = "Z0000000000ETCDAGENT"
	testDomain = "etcd.agent.test"
)

// clientRecordsWait bounds the wait for the leader's agent to bring the
// record set in step (its round is dnsrecords.Interval, plus a lock).
const clientRecordsWait = 2 * time.Minute

// TestClientRecordsFollowReplacement: with clients.route53 set, the agents
// keep _etcd-client-ssl._tcp.<domain> in the (test) Route 53 zone in step
// with the voters, through the SDK's signed requests: three founders, then
// a replacement (a member gone, a new one promoted), then a leave that
// withdraws its member's records before it goes. After each, a real DNS
// client resolves the SRV records from the zone and a TLS etcd client
// reaches every member by the names found, as `etcdctl --discovery-srv`
// would. Sequential: it sets the AWS credentials in the environment.
func TestClientRecordsFollowReplacement(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	useAWSCredentials(t)
	r53 := route53test.New(t)
	r53.AddZone(testZoneID, "agent.test")
	r53.PageSize = 3
	dnsSrv := r53.ServeDNS(t, testZoneID)

	token := h.startDiscovery(ctx, 3)
	nodeConfig := func(i int) *config.Config {
		cfg := h.e.NodeConfig(i, 3)
		cfg.Cluster.Discovery = h.v3Discovery(token)
		cfg.Clients.Route53 = config.Route53{HostedZoneID: testZoneID, Domain: testDomain, TTL: config.Duration(30 * time.Second), Endpoint: r53.URL}
		_, loaded := h.e.WriteConfig(i, cfg)
		return loaded
	}
	nodes := []*node{h.start(ctx, 1, nodeConfig(1)), h.start(ctx, 2, nodeConfig(2)), h.start(ctx, 3, nodeConfig(3))}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	cli := clusterClient(h, nodes...)
	defer cli.Close()
	w := startWriter(t, cli, 1)

	h.waitClientRecords(t, r53, 1, 2, 3)
	t.Logf("record set before the replacement:\n%s", zoneListing(r53))
	t.Logf("DNS answers before the replacement:\n%s", digSRV(t, dnsSrv))
	h.reachThroughSRV(t, ctx, dnsSrv, nodes[0].certDir(), 1, 2, 3)

	nodes[2].stop() // the instance is gone, its member with it
	fresh := h.start(ctx, 4, nodeConfig(4))
	fresh.waitReady(t, joinTimeout)
	h.waitClientRecords(t, r53, 1, 2, 4)
	t.Logf("record set after the replacement:\n%s", zoneListing(r53))
	gone := config.MemberRecordName(h.name(3), testDomain)
	t.Logf("DNS answers after the replacement:\n%s", digSRV(t, dnsSrv, gone))
	h.reachThroughSRV(t, ctx, dnsSrv, nodes[0].certDir(), 1, 2, 4)
	if _, err := dnsSrv.Resolver().LookupHost(ctx, gone); !isNXDomain(err) {
		t.Errorf("the replaced member's name %s still resolves: %v", gone, err)
	}
	cli.SetEndpoints(nodes[0].agent.Report().ClientURL, nodes[1].agent.Report().ClientURL)
	w.verify(t, cli)

	// Route 53 refuses the instance role: status shows it, with its fix, on
	// every node (not only on the writer's), until the policy allows again.
	r53.Deny("ListResourceRecordSets")
	running := []*node{nodes[0], nodes[1], fresh}
	for _, n := range running {
		p := waitProblem(t, n, problem.DNSAccessDenied.Code, true)
		if !strings.Contains(p.Text, "not authorized to perform: route53:ListResourceRecordSets") || !strings.Contains(p.Fix, "route53:ListResourceRecordSets") {
			t.Errorf("node %d problem %+v: want the refused action and the policy to fix", n.i, p)
		}
	}
	rep := nodes[1].agent.Report()
	v := status.Gather(ctx, status.Options{Endpoints: []string{rep.ClientURL}, TLS: nodeOperatorTLS(t, nodes[1]), Report: &rep})
	var table strings.Builder
	if err := status.Render(&table, v, "table"); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(v.Summary.Problems, func(p problem.Problem) bool { return p.Code == problem.DNSAccessDenied.Code }) ||
		!strings.Contains(table.String(), "not authorized to perform: route53:ListResourceRecordSets") || !strings.Contains(table.String(), "docs/deploy-aws.md") {
		t.Errorf("status on node 2 does not show %s with its fix:\n%s", problem.DNSAccessDenied.Code, table.String())
	}
	t.Logf("status on node 2 while Route 53 refuses:\n%s", table.String())
	r53.Allow("ListResourceRecordSets")
	for _, n := range running {
		waitProblem(t, n, problem.DNSAccessDenied.Code, false)
	}

	// `leave` on node 4 withdraws its records before its member goes.
	logger := slog.New(slog.DiscardHandler)
	leaver, err := agent.New(agent.Options{Config: fresh.cfg, Identity: agent.NewIdentity(fresh.cfg, logger), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	lctx, lcancel := context.WithTimeout(ctx, time.Minute)
	err = leaver.Leave(lctx, func(s string) { steps = append(steps, s) })
	lcancel()
	if err != nil {
		t.Fatalf("leave: %v (steps %q)", err, steps)
	}
	withdrawn := slices.IndexFunc(steps, func(s string) bool { return strings.HasPrefix(s, "client DNS records withdrawn") })
	removing := slices.IndexFunc(steps, func(s string) bool { return strings.HasPrefix(s, "removing member") })
	if withdrawn < 0 || removing < 0 || withdrawn > removing {
		t.Errorf("leave steps %q: want the client DNS records withdrawn before the member is removed", steps)
	}
	h.wantClientRecords(t, r53, 1, 2) // at once: withdrawn, not left to the leader
	lintest.HashKVEqual(t, cli, []string{nodes[0].agent.Report().ClientURL, nodes[1].agent.Report().ClientURL})
	t.Logf("record set after node 4 left:\n%s", zoneListing(r53))
	t.Logf("DNS answers after node 4 left:\n%s", digSRV(t, dnsSrv, config.MemberRecordName(h.name(4), testDomain)))
	for _, r := range r53.Requests() {
		if r.Err != "" && r.Err != "AccessDenied" {
			t.Errorf("the test Route 53 refused a request: %s: %s", r.Op, r.Err)
		}
	}
}

// waitProblem waits until n's report has (present) or no longer has a
// problem of code, and returns it.
func waitProblem(t *testing.T, n *node, code problem.Code, present bool) problem.Problem {
	t.Helper()
	deadline := time.Now().Add(clientRecordsWait)
	for {
		ps := n.agent.Report().Problems
		i := slices.IndexFunc(ps, func(p problem.Problem) bool { return p.Code == code })
		if (i >= 0) == present {
			if i >= 0 {
				return ps[i]
			}
			return problem.Problem{}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d problems after %s: %+v (want %s present: %v)", n.i, clientRecordsWait, ps, code, present)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// useAWSCredentials gives the SDK's default chain the test server's static
// credentials and nothing else (no shared files, no IMDS).
func useAWSCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", route53test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", route53test.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// wantRecords are the record sets the agents should keep for nodes idx.
func (h *harness) wantRecords(idx ...int) []dnsrecords.RecordSet {
	srv := dnsrecords.RecordSet{Name: "_etcd-client-ssl._tcp." + testDomain + ".", Type: "SRV", TTL: 30}
	var out []dnsrecords.RecordSet
	for _, i := range idx {
		name := config.MemberRecordName(h.name(i), testDomain) + "."
		out = append(out, dnsrecords.RecordSet{Name: name, Type: "A", TTL: 30, Values: []string{h.ip(i)}})
		srv.Values = append(srv.Values, "0 10 2379 "+name)
	}
	slices.Sort(srv.Values)
	return append(out, srv)
}

// clientRecords are the zone's record sets under the domain.
func clientRecords(r53 *route53test.Server) []dnsrecords.RecordSet {
	var out []dnsrecords.RecordSet
	for _, s := range r53.Sets(testZoneID) {
		if strings.HasSuffix(s.Name, "."+testDomain+".") {
			out = append(out, s)
		}
	}
	return out
}

func sameRecords(got, want []dnsrecords.RecordSet) bool {
	key := func(s dnsrecords.RecordSet) string { return s.String() }
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = key(got[i])
	}
	for i := range want {
		w[i] = key(want[i])
	}
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// waitClientRecords waits until the zone holds exactly nodes idx's records.
func (h *harness) waitClientRecords(t *testing.T, r53 *route53test.Server, idx ...int) {
	t.Helper()
	want := h.wantRecords(idx...)
	deadline := time.Now().Add(clientRecordsWait)
	for !sameRecords(clientRecords(r53), want) {
		if time.Now().After(deadline) {
			t.Fatalf("record set after %s:\n%s\nwant\n%v", clientRecordsWait, zoneListing(r53), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wantClientRecords checks that the zone holds exactly nodes idx's records.
func (h *harness) wantClientRecords(t *testing.T, r53 *route53test.Server, idx ...int) {
	t.Helper()
	if want := h.wantRecords(idx...); !sameRecords(clientRecords(r53), want) {
		t.Fatalf("record set:\n%s\nwant\n%v", zoneListing(r53), want)
	}
}

// zoneListing is the zone's records under the domain, one set a line.
func zoneListing(r53 *route53test.Server) string {
	var b strings.Builder
	for _, s := range clientRecords(r53) {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	return b.String()
}

// digSRV asks the DNS server for the SRV records (and each target's A
// record) with miekg/dns's client, and renders the answers as dig does.
func digSRV(t *testing.T, d *route53test.DNS, alsoA ...string) string {
	t.Helper()
	var b strings.Builder
	c := new(dns.Client)
	ask := func(name string, typ uint16) []dns.RR {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), typ)
		in, _, err := c.Exchange(m, d.Addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  ;; %s %s: %s, %d answers\n", name, dns.TypeToString[typ], dns.RcodeToString[in.Rcode], len(in.Answer))
		for _, rr := range in.Answer {
			fmt.Fprintf(&b, "  %s\n", rr)
		}
		return in.Answer
	}
	for _, rr := range ask(dnsrecords.Service+"."+testDomain, dns.TypeSRV) {
		ask(rr.(*dns.SRV).Target, dns.TypeA)
	}
	for _, name := range alsoA {
		ask(name, dns.TypeA)
	}
	return b.String()
}

// reachThroughSRV does what `etcdctl --discovery-srv <domain>` does, with
// the test's DNS server as the resolver: look up the SRV records, make
// https://<target>:<port> endpoints of them, and dial each by that name
// (TLS checks the name against the member's server certificate). It wants
// exactly nodes idx, each answering as itself.
func (h *harness) reachThroughSRV(t *testing.T, ctx context.Context, d *route53test.DNS, certDir string, idx ...int) {
	t.Helper()
	res := d.Resolver()
	_, srvs, err := res.LookupSRV(ctx, "etcd-client-ssl", "tcp", testDomain)
	if err != nil {
		t.Fatalf("SRV lookup: %v", err)
	}
	var eps, want []string
	for _, s := range srvs {
		eps = append(eps, fmt.Sprintf("https://%s:%d", strings.TrimSuffix(s.Target, "."), s.Port))
	}
	for _, i := range idx {
		want = append(want, fmt.Sprintf("https://%s:2379", config.MemberRecordName(h.name(i), testDomain)))
	}
	slices.Sort(eps)
	slices.Sort(want)
	if !slices.Equal(eps, want) {
		t.Fatalf("endpoints from SRV = %q, want %q", eps, want)
	}
	tlsCfg, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Resolver: res, Timeout: 5 * time.Second}
	for _, ep := range eps {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return dialer.DialContext(ctx, "tcp", addr)
			})}})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := cli.Status(sctx, ep)
		var members *clientv3.MemberListResponse
		if err == nil {
			members, err = cli.MemberList(sctx)
		}
		cancel()
		cli.Close()
		if err != nil {
			t.Fatalf("%s (found through SRV): %v", ep, err)
		}
		name := ""
		for _, m := range members.Members {
			if m.ID == st.Header.MemberId {
				name = m.Name
			}
		}
		if host := strings.TrimPrefix(strings.TrimSuffix(ep, ":2379"), "https://"); host != config.MemberRecordName(name, testDomain) {
			t.Errorf("%s answered as member %q", ep, name)
		}
	}
}

func isNXDomain(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}
