package status

import (
	"context"
	"crypto/tls"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Defaults for zero Options fields. A healthy member answers status in
// milliseconds; one second keeps `status` under 1.2 s with a member frozen.
const (
	DefaultTimeout      = time.Second
	DefaultReportMaxAge = 30 * time.Second
)

// Options says where and how to look.
type Options struct {
	// Endpoints to ask first (client URLs). Every client URL in the member
	// list they return is asked too.
	Endpoints []string
	// TLS is the operator's client config (pki.ClientTLS with the operator pair).
	TLS *tls.Config
	// Timeout bounds each query to each endpoint. Zero: DefaultTimeout.
	Timeout time.Duration
	// Quota is the configured backend quota in bytes, shown when a member
	// does not report its own. Zero: unknown.
	Quota int64
	// Size is the configured number of voters (cluster.size): fewer is
	// the under-replicated problem. Zero: not checked.
	Size int

	// Report is this node's agent report; nil with ReportErr when it could
	// not be read.
	Report    *report.NodeReport
	ReportErr error
	// ReportMaxAge is how old the report may be before the agent counts as
	// hung. Zero: DefaultReportMaxAge.
	ReportMaxAge time.Duration
	// CertDir, when set, is read for certificate expiry (certificates are
	// world-readable); it wins over the report's copy, which may be stale.
	CertDir string

	// Now is the time the view is computed at. Zero: time.Now().
	Now time.Time
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ReportMaxAge <= 0 {
		o.ReportMaxAge = DefaultReportMaxAge
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// Gather asks every endpoint in parallel and builds the view. It does not
// fail: what could not be learned is in the view (Endpoint.Error,
// MemberListError, Node.ReportError, Summary.Problems). Last, one more
// parallel round asks every voter that answered for HashKV at the lowest
// revision among them (hashcheck). A member that does not answer costs one
// Timeout (all are asked at once): Gather returns within about one Timeout
// when every member is in the endpoints asked first, two when one is only in
// the member list, or when ctx ends.
func Gather(ctx context.Context, opts Options) View {
	opts = opts.withDefaults()
	p := prober{tls: opts.TLS, timeout: opts.Timeout}

	first := normalize(opts.Endpoints)
	probes := probeAll(ctx, p, first, true)

	f := facts{now: opts.Now, quota: opts.Quota, size: opts.Size, node: nodeView(opts)}
	f.list = pickList(probes)
	var known []string
	for _, m := range f.list.members {
		known = append(known, m.ClientURLs...)
	}
	var more []string
	for _, ep := range normalize(known) {
		if !slices.Contains(first, ep) {
			more = append(more, ep)
		}
	}
	f.probes = append(probes, probeAll(ctx, p, more, false)...)
	defer func() {
		for _, pr := range f.probes {
			if pr.cli != nil {
				pr.cli.Close()
			}
		}
	}()
	f.hashRev = hashAll(ctx, p, f.probes)
	return assemble(f)
}

// hashAll asks every voter that answered status for HashKV at the lowest of
// their current revisions, all at once, and stores each answer in its probe.
// A member reached through several endpoints is asked once. It returns the
// revision, 0 when no voter answered.
func hashAll(ctx context.Context, p prober, probes []probe) int64 {
	var revs []int64
	var ask []int
	seen := map[uint64]bool{}
	for i, pr := range probes {
		if pr.status == nil || pr.status.IsLearner {
			continue
		}
		if id := pr.status.GetHeader().GetMemberId(); !seen[id] {
			seen[id] = true
			revs = append(revs, pr.status.GetHeader().GetRevision())
			ask = append(ask, i)
		}
	}
	rev := hashcheck.CommonRevision(revs...)
	if rev == 0 {
		return 0
	}
	var wg sync.WaitGroup
	for _, i := range ask {
		wg.Go(func() {
			a := p.hashKV(ctx, probes[i], rev)
			probes[i].hash = &a
		})
	}
	wg.Wait()
	return rev
}

// probeAll probes every endpoint at once and returns the results in the
// order of eps.
func probeAll(ctx context.Context, p prober, eps []string, withList bool) []probe {
	out := make([]probe, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() { out[i] = p.run(ctx, ep, withList) })
	}
	wg.Wait()
	return out
}

// pickList takes the member list and alarms from the first endpoint (in the
// order asked) that answered both, or reports why none did.
func pickList(probes []probe) memberList {
	var errs []string
	for _, pr := range probes {
		switch {
		case pr.statusErr != nil:
			errs = append(errs, pr.endpoint+": "+pr.statusErr.Error())
		case pr.membersErr != nil:
			errs = append(errs, pr.endpoint+": "+pr.membersErr.Error())
		default:
			l := memberList{from: pr.endpoint, members: pr.members, alarms: pr.alarms}
			if pr.alarmsErr != nil {
				l.alarmsErr = pr.alarmsErr.Error()
			}
			return l
		}
	}
	if len(errs) == 0 {
		return memberList{err: "no endpoint to ask"}
	}
	return memberList{err: strings.Join(errs, "; ")}
}

// normalize trims, drops empties and duplicates (and a trailing slash),
// keeping order.
func normalize(eps []string) []string {
	var out []string
	for _, ep := range eps {
		ep = strings.TrimSuffix(strings.TrimSpace(ep), "/")
		if ep != "" && !slices.Contains(out, ep) {
			out = append(out, ep)
		}
	}
	return out
}

// NeverRan is the view of a node where the agent never ran: no report and
// no operator certificate, so the cluster cannot be asked from here. It
// shows the node and the agent-never-ran problem (exit ExitUnhealthy).
func NeverRan(opts Options, why string) View {
	opts = opts.withDefaults()
	n := nodeView(opts)
	p := problem.AgentNeverRan.New(n.Name, "the agent never ran on this node: "+why)
	return View{
		CheckedAt: opts.Now.UTC(),
		Node:      n,
		Members:   []Member{},
		Endpoints: []Endpoint{},
		Summary:   Summary{NotAsked: why, Problems: []problem.Problem{p}},
	}
}
