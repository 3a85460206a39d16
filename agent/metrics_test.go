package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/metrics"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// scrape fetches url and parses it with Prometheus's own text parser.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// sample is the value of the family's sample whose labels include want
// (name=value pairs), and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			ok = ok && labels[k] == v
		}
		if !ok {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsEndpoint runs three agents (embedded etcd). Node 1 serves its
// metrics and etcd's own (--listen-metrics-urls on loopback through
// etcd.extraFlags); every value scraped must match the agent's report, on a
// healthy node and again after it lost quorum. Node 2's metrics port is
// taken when it starts: that is a problem in its report until the port frees
// up, and then it serves.
func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	block := h.staticDiscovery(1, 2, 3)

	cfg1 := h.config(1, 3, block)
	cfg1.Metrics.Enabled = true
	cfg1.Metrics.Address = fmt.Sprintf("%s:%d", h.ip(1), testnet.FreePort(t, h.ip(1)))
	etcdMetrics := fmt.Sprintf("http://%s:%d", h.ip(1), testnet.FreePort(t, h.ip(1)))
	cfg1.Etcd.ExtraFlags = []string{"--listen-metrics-urls=" + etcdMetrics}

	cfg2 := h.config(2, 3, block)
	busy, err := net.Listen("tcp", h.ip(2)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg2.Metrics.Enabled, cfg2.Metrics.Address = true, busy.Addr().String()

	version := func(o *agent.Options) { o.Version = "v1.2.3-test" }
	nodes := []*node{
		h.startWith(ctx, 1, cfg1, version),
		h.startWith(ctx, 2, cfg2, version),
		h.startWith(ctx, 3, h.config(3, 3, block), version),
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	url1 := "http://" + cfg1.Metrics.Address + "/metrics"

	// Healthy: every value is the report's.
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	fams, r := scrapeUntil(t, wctx, url1, nodes[0], func(fams map[string]*dto.MetricFamily, r report.NodeReport) bool {
		v, _ := sample(fams, "etcd_agent_ready")
		return v == 1 && r.Ready
	})
	checkMatchesReport(t, fams, r)
	if _, ok := sample(fams, "etcd_agent_build_info", "version=v1.2.3-test"); !ok || r.Version != "v1.2.3-test" {
		t.Errorf("etcd_agent_build_info: want version v1.2.3-test, report %q", r.Version)
	}
	if v, ok := sample(fams, "etcd_agent_phase", "phase=healthy"); !ok || v != 1 {
		t.Errorf("etcd_agent_phase{phase=healthy} = %v (%v), want 1", v, ok)
	}
	// A founder bootstraps, or joins when it finds the others' etcd already
	// running (the static fence): one membership decision either way.
	boot, _ := sample(fams, "etcd_agent_decisions_total", "action=bootstrap")
	join, _ := sample(fams, "etcd_agent_decisions_total", "action=join")
	if boot+join != 1 {
		t.Errorf("etcd_agent_decisions_total: bootstrap %v, join %v; want one of them 1 (report decisions %+v)", boot, join, r.Decisions)
	}
	for _, k := range problem.Known() {
		if v, ok := sample(fams, "etcd_agent_problems", "code="+string(k.Code), "severity="+string(k.Severity)); !ok || v != 0 {
			t.Errorf("etcd_agent_problems{code=%s} = %v (%v), want 0 on a healthy node", k.Code, v, ok)
		}
	}
	if _, ok := sample(fams, "go_goroutines"); !ok {
		t.Error("no go_goroutines: the Go collector is missing")
	}
	if _, ok := sample(fams, "process_resident_memory_bytes"); !ok {
		t.Error("no process_resident_memory_bytes: the process collector is missing")
	}

	// etcd's own metrics, on the loopback listener the extra flag allowed.
	efams, err := scrape(wctx, etcdMetrics+"/metrics")
	if err != nil {
		t.Fatalf("etcd's metrics: %v", err)
	}
	if v, ok := sample(efams, "etcd_server_has_leader"); !ok || v != 1 {
		t.Errorf("etcd_server_has_leader = %v (%v), want 1", v, ok)
	}
	checkDashboard(t, fams, efams)

	// Node 2 could not listen: a problem in its report, then it serves once
	// the port is free (retried with backoff).
	if !hasCode(nodes[1].agent.Report().Problems, problem.MetricsUnavailable.Code) {
		t.Errorf("node 2 problems %+v, want %s while its port is taken", nodes[1].agent.Report().Problems, problem.MetricsUnavailable.Code)
	}
	busy.Close()
	fams2, r2 := scrapeUntil(t, wctx, "http://"+cfg2.Metrics.Address+"/metrics", nodes[1], func(fams map[string]*dto.MetricFamily, r report.NodeReport) bool {
		return !hasCode(r.Problems, problem.MetricsUnavailable.Code)
	})
	checkMatchesReport(t, fams2, r2)

	// Quorum lost: node 1's agent is degraded, not ready, with a problem.
	nodes[1].stop()
	nodes[2].stop()
	// Which check fails first (the member list, or the leader) decides the code.
	fams, r = scrapeUntil(t, wctx, url1, nodes[0], func(fams map[string]*dto.MetricFamily, r report.NodeReport) bool {
		unhealthy, _ := sample(fams, "etcd_agent_problems", "code="+string(problem.LocalMemberUnhealthy.Code), "severity=warning")
		leaderless, _ := sample(fams, "etcd_agent_problems", "code="+string(problem.NoLeader.Code), "severity=critical")
		return unhealthy+leaderless == 1 && (hasCode(r.Problems, problem.LocalMemberUnhealthy.Code) || hasCode(r.Problems, problem.NoLeader.Code))
	})
	checkMatchesReport(t, fams, r)
	if v, _ := sample(fams, "etcd_agent_ready"); v != 0 || r.Ready {
		t.Errorf("etcd_agent_ready = %v, report ready %v: want 0 without quorum", v, r.Ready)
	}
	if v, _ := sample(fams, "etcd_agent_phase", "phase=degraded"); v != 1 || r.Phase != report.PhaseDegraded {
		t.Errorf("etcd_agent_phase{phase=degraded} = %v, report phase %s", v, r.Phase)
	}
}

// scrapeUntil scrapes url until done holds for the metrics and the agent's
// report taken right after, and returns both.
func scrapeUntil(t *testing.T, ctx context.Context, url string, n *node, done func(map[string]*dto.MetricFamily, report.NodeReport) bool) (map[string]*dto.MetricFamily, report.NodeReport) {
	t.Helper()
	var lastErr error
	for {
		fams, err := scrape(ctx, url)
		if err == nil {
			if r := n.agent.Report(); done(fams, r) {
				return fams, r
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: condition not met in time (last error %v; report phase %s, problems %+v)", url, lastErr, n.agent.Report().Phase, n.agent.Report().Problems)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkMatchesReport asserts the metrics that mirror the report do.
func checkMatchesReport(t *testing.T, fams map[string]*dto.MetricFamily, r report.NodeReport) {
	t.Helper()
	if v, ok := sample(fams, "etcd_agent_build_info", "version="+r.Version); !ok || v != 1 {
		t.Errorf("etcd_agent_build_info{version=%q} = %v (%v)", r.Version, v, ok)
	}
	if v, ok := sample(fams, "etcd_agent_node_info", "member="+r.Name, "private_ip="+r.PrivateIP); !ok || v != 1 {
		t.Errorf("etcd_agent_node_info{member=%s} = %v (%v)", r.Name, v, ok)
	}
	phases := 0.0
	for _, m := range fams["etcd_agent_phase"].GetMetric() {
		phases += m.GetGauge().GetValue()
	}
	if v, _ := sample(fams, "etcd_agent_phase", "phase="+string(r.Phase)); v != 1 || phases != 1 {
		t.Errorf("etcd_agent_phase{phase=%s} = %v, %v phases at 1; want exactly that one", r.Phase, v, phases)
	}
	for action, n := range r.DecisionCounts {
		if v, _ := sample(fams, "etcd_agent_decisions_total", "action="+string(action)); v != float64(n) {
			t.Errorf("etcd_agent_decisions_total{action=%s} = %v, report %d", action, v, n)
		}
	}
	for _, change := range report.MembershipChanges() {
		if v, ok := sample(fams, "etcd_agent_membership_changes_total", "change="+string(change)); !ok || v != float64(r.DecisionCounts[change]) {
			t.Errorf("etcd_agent_membership_changes_total{change=%s} = %v (%v), report %d", change, v, ok, r.DecisionCounts[change])
		}
	}
	if len(r.Certs) != 4 {
		t.Errorf("report certs %+v, want 4", r.Certs)
	}
	for _, c := range r.Certs {
		v, ok := sample(fams, "etcd_agent_certificate_expiry_timestamp_seconds", "role="+c.Role)
		if !ok || int64(v) != c.NotAfter.Unix() {
			t.Errorf("certificate expiry for %s = %v (%v), report %s", c.Role, v, ok, c.NotAfter)
		}
	}
	byCode, _ := problem.Count(r.Problems)
	for code, n := range byCode {
		if v, _ := sample(fams, "etcd_agent_problems", "code="+string(code)); v != float64(n) {
			t.Errorf("etcd_agent_problems{code=%s} = %v, report has %d", code, v, n)
		}
	}
}

// checkDashboard asserts that every metric the Grafana dashboard queries is
// one a real agent or its etcd exposes (or, for the agent, declares).
func checkDashboard(t *testing.T, agentFams, etcdFams map[string]*dto.MetricFamily) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "grafana", "etcd-agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("docs/grafana/etcd-agent.json: %v", err)
	}
	ident := regexp.MustCompile(`\b(?:etcd|process|go)_[a-z0-9_]+\b`)
	variable := regexp.MustCompile(`\$\w+`) // dashboard variables, e.g. $etcd_job
	used := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range ident.FindAllString(variable.ReplaceAllString(tg.Expr, ""), -1) {
				used++
				family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				// An agent metric shows samples once its state exists (a
				// snapshot taken, a maintenance round done); declared is enough.
				if agentFams[family] == nil && etcdFams[family] == nil && !slices.Contains(metrics.Names(), family) {
					t.Errorf("dashboard panel %q queries %s, which neither the agent nor etcd exposes", p.Title, name)
				}
			}
		}
	}
	if used < 10 {
		t.Errorf("dashboard queries %d metrics; did its format change?", used)
	}
}

func hasCode(ps []problem.Problem, code problem.Code) bool {
	for _, p := range ps {
		if p.Code == code {
			return true
		}
	}
	return false
}
