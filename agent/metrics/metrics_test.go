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
		DecisionCounts: map[report.Action]uint64{"join": 1, "add-learner": 1, "promote": 1},
		Certs:          []report.Cert{{Role: "server", NotAfter: expiry}, {Role: "peer", NotAfter: expiry.Add(time.Hour)}},
		Problems: []problem.Problem{
			problem.AlarmNoSpace.New("etcd-10-0-1-5", "full"),
			stale.New("", "last snapshot 3h ago"),
		},
		Maintenance: &report.Maintenance{
			Members: []report.MemberSpace{
				{Name: "etcd-10-0-1-5", DBSize: 64 << 20, DBSizeInUse: 16 << 20, Fragmentation: 0.75},
				{Name: "etcd-10-0-1-6", Error: "no answer within 2s"},
			},
			LastDefrag: &report.Defrag{Member: "etcd-10-0-1-5", At: expiry},
			NoSpace:    report.NoSpace{State: report.NoSpaceRecovering},
		},
		Backup: &report.Backup{
			Interval:     30 * time.Minute,
			Last:         &report.Snapshot{Name: "s1", Revision: 4242, Time: expiry},
			Verification: &report.Verification{Name: "s1", OK: true},
		},
		FleetLock: &report.FleetLock{Holders: []report.FleetLockHolder{{ID: "f3a1", Group: "workers", Member: "etcd-10-0-1-7", Since: expiry}}},
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
		`etcd_agent_member_db_size_bytes{member="etcd-10-0-1-5"} 6.7108864e+07`,
		`etcd_agent_member_db_size_in_use_bytes{member="etcd-10-0-1-5"} 1.6777216e+07`,
		`etcd_agent_member_fragmentation_ratio{member="etcd-10-0-1-5"} 0.75`,
		`etcd_agent_last_defrag_timestamp_seconds 1.8276552e+09`,
		`etcd_agent_nospace{state="recovering"} 1`,
		`etcd_agent_nospace{state="kept"} 0`,
		`etcd_agent_snapshot_last_timestamp_seconds 1.8276552e+09`,
		`etcd_agent_snapshot_last_revision 4242`,
		`etcd_agent_snapshot_last_verified 1`,
		`etcd_agent_snapshot_interval_seconds 1800`,
		`etcd_agent_fleetlock_slots_held{group="default"} 0`,
		`etcd_agent_fleetlock_slots_held{group="workers"} 1`,
		`etcd_agent_fleetlock_holder_since_timestamp_seconds{group="workers",id="f3a1",member="etcd-10-0-1-7"} 1.8276552e+09`,
		"# TYPE etcd_agent_decisions_total counter",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(text, `member="etcd-10-0-1-6"`) {
		t.Error("a member that did not answer has size samples")
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
