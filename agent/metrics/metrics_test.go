package metrics_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/etcd-agent/etcd-agent/agent/metrics"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// TestCollectorReadsTheReport renders a registry for a fixed report with
// Prometheus's own encoder and reads it back with its text parser: what a
// scrape would see.
func TestCollectorReadsTheReport(t *testing.T) {
	expiry := time.Date(2027, 12, 1, 10, 0, 0, 0, time.UTC)
	// A problem kind another part of the agent declared (not in the catalog).
	stale := problem.Kind{Code: "snapshot-stale", Severity: problem.Warning, Title: "snapshot too old"}
	r := report.NodeReport{
		Version: "v1.0.0", Name: "etcd-10-0-1-5", PrivateIP: "10.0.1.5", Phase: report.PhaseDegraded, Ready: false,
		Transitions:    []report.Transition{{At: expiry.Add(-time.Hour), Phase: report.PhaseDegraded}},
		DecisionCounts: map[string]uint64{"join": 1, "add-learner": 1, "promote": 1},
		Certs:          []report.Cert{{Role: "server", NotAfter: expiry}, {Role: "peer", NotAfter: expiry.Add(time.Hour)}},
		Problems: []problem.Problem{
			problem.AlarmNoSpace.New("etcd-10-0-1-5", "full"),
			stale.New("", "last snapshot 3h ago"),
		},
	}
	reg := metrics.NewRegistry(func() report.NodeReport { return r })
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	text := buf.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, text)
	}
	for _, want := range []string{
		`etcd_agent_build_info{version="v1.0.0"} 1`,
		`etcd_agent_node_info{client_url="",member="etcd-10-0-1-5",private_ip="10.0.1.5"} 1`,
		`etcd_agent_phase{phase="degraded"} 1`,
		`etcd_agent_phase{phase="healthy"} 0`,
		`etcd_agent_phase_changed_timestamp_seconds 1.8276516e+09`,
		`etcd_agent_ready 0`,
		`etcd_agent_decisions_total{action="join"} 1`,
		`etcd_agent_membership_changes_total{change="add-learner"} 1`,
		`etcd_agent_membership_changes_total{change="remove-member"} 0`,
		`etcd_agent_certificate_expiry_timestamp_seconds{role="server"} 1.8276552e+09`,
		`etcd_agent_problems{code="alarm-nospace",severity="critical"} 1`,
		`etcd_agent_problems{code="no-leader",severity="critical"} 0`,
		`etcd_agent_problems{code="snapshot-stale",severity="warning"} 1`,
		"# TYPE etcd_agent_decisions_total counter",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// Prometheus naming: the prefix, snake case, counters end in _total.
	name := regexp.MustCompile(`^etcd_agent_[a-z0-9_]+$`)
	for _, n := range metrics.Names() {
		if !name.MatchString(n) {
			t.Errorf("metric name %q", n)
		}
	}
	for _, f := range fams {
		if f.GetType().String() == "COUNTER" && !strings.HasSuffix(f.GetName(), "_total") {
			t.Errorf("counter %s does not end in _total", f.GetName())
		}
	}
}
