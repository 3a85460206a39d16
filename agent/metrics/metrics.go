// Package metrics is the agent's Prometheus endpoint. Every agent metric is
// read at scrape time from the agent's report (report.NodeReport), the same
// state `etcd-agent status` and the STATUS= line show, so the numbers never
// disagree with them and no code outside this package updates a metric.
//
// To add a metric: put what it needs into the report (a field of
// NodeReport, set by the part of the agent that knows it), and add a family
// to families() reading it. Names follow Prometheus conventions: the prefix
// etcd_agent_, base units (seconds, bytes), _total for counters,
// _timestamp_seconds for points in time.
package metrics

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Namespace prefixes every agent metric.
const Namespace = "etcd_agent"

// emit reports one sample of a family: its value and label values, in the
// order of the family's labels.
type emit func(value float64, labels ...string)

// family is one metric: its name, help, type and labels, and how to read
// its samples from a report.
type family struct {
	name    string
	help    string
	kind    prometheus.ValueType
	labels  []string
	collect func(r report.NodeReport, e emit)
}

// phases lists every phase, so etcd_agent_phase shows each at 0 or 1.
var phases = []report.Phase{
	report.PhaseStarting, report.PhaseIdentity, report.PhaseCertificates, report.PhaseDiscovery, report.PhaseJoining,
	report.PhaseStandby, report.PhaseLearner, report.PhaseLeaving, report.PhaseLeft, report.PhaseStartingEtcd,
	report.PhaseHealthy, report.PhaseDegraded, report.PhaseStopping, report.PhaseStopped,
}

// families are the agent's metrics, in the order they are exposed.
func families() []family {
	return []family{
		{"build_info", "The agent's version (label version), 1.", prometheus.GaugeValue, []string{"version"},
			func(r report.NodeReport, e emit) { e(1, r.Version) }},
		{"node_info", "This node's etcd member name and address, 1.", prometheus.GaugeValue, []string{"member", "private_ip", "client_url"},
			func(r report.NodeReport, e emit) { e(1, r.Name, r.PrivateIP, r.ClientURL) }},
		{"phase", "1 for the phase the agent is in (starting … healthy, degraded), 0 for the others.", prometheus.GaugeValue, []string{"phase"},
			func(r report.NodeReport, e emit) {
				for _, p := range phases {
					e(boolValue(r.Phase == p), string(p))
				}
				if r.Phase != "" && !slices.Contains(phases, r.Phase) {
					e(1, string(r.Phase))
				}
			}},
		{"phase_changed_timestamp_seconds", "When the agent entered its current phase (Unix time).", prometheus.GaugeValue, nil,
			func(r report.NodeReport, e emit) {
				if n := len(r.Transitions); n > 0 {
					e(unix(r.Transitions[n-1].At))
				}
			}},
		{"ready", "1 when the local member is a healthy, caught-up voter and READY=1 was sent, else 0.", prometheus.GaugeValue, nil,
			func(r report.NodeReport, e emit) { e(boolValue(r.Ready)) }},
		{"decisions_total", "Decisions the agent took since it started, by action (bootstrap, join, restart, add-learner, promote, remove-member, …).", prometheus.CounterValue, []string{"action"},
			func(r report.NodeReport, e emit) {
				for _, action := range sortedKeys(r.DecisionCounts) {
					e(float64(r.DecisionCounts[action]), string(action))
				}
			}},
		{"membership_changes_total", "Changes this agent made to the member list since it started, by change.", prometheus.CounterValue, []string{"change"},
			func(r report.NodeReport, e emit) {
				// Shown at 0 before they happen.
				for _, c := range report.MembershipChanges() {
					e(float64(r.DecisionCounts[c]), string(c))
				}
			}},
		{"certificate_expiry_timestamp_seconds", "When each of this node's certificates expires (Unix time), by role.", prometheus.GaugeValue, []string{"role"},
			func(r report.NodeReport, e emit) {
				for _, c := range r.Certs {
					e(unix(c.NotAfter), c.Role)
				}
			}},
		{"problems", "Problems the agent finds now, by code and severity (every known code is shown, at 0 when absent).", prometheus.GaugeValue, []string{"code", "severity"},
			func(r report.NodeReport, e emit) {
				byCode, _ := problem.Count(r.Problems)
				severity := map[problem.Code]problem.Severity{}
				for _, k := range problem.Known() {
					severity[k.Code] = k.Severity
				}
				for _, p := range r.Problems {
					severity[p.Code] = p.Severity
				}
				for _, code := range sortedKeys(severity) {
					e(float64(byCode[code]), string(code), string(severity[code]))
				}
			}},
		{"member_db_size_bytes", "Each member's database file size as this agent's maintenance round last saw it, by member.", prometheus.GaugeValue, []string{"member"},
			func(r report.NodeReport, e emit) {
				for _, m := range maintenanceMembers(r) {
					e(float64(m.DBSize), m.Name)
				}
			}},
		{"member_db_size_in_use_bytes", "The part of each member's database file holding data, by member.", prometheus.GaugeValue, []string{"member"},
			func(r report.NodeReport, e emit) {
				for _, m := range maintenanceMembers(r) {
					e(float64(m.DBSizeInUse), m.Name)
				}
			}},
		{"member_fragmentation_ratio", "The unused fraction (0-1) of each member's database file, by member: what a defragmentation gives back.", prometheus.GaugeValue, []string{"member"},
			func(r report.NodeReport, e emit) {
				for _, m := range maintenanceMembers(r) {
					e(m.Fragmentation, m.Name)
				}
			}},
		{"last_defrag_timestamp_seconds", "When the cluster's last defragmentation, by any agent, ended (Unix time).", prometheus.GaugeValue, nil,
			func(r report.NodeReport, e emit) {
				if m := r.Maintenance; m != nil && m.LastDefrag != nil {
					e(unix(m.LastDefrag.At))
				}
			}},
		{"nospace", "1 for the NOSPACE handling state (none, recovering, kept: the data does not fit the quota), 0 for the others.", prometheus.GaugeValue, []string{"state"},
			func(r report.NodeReport, e emit) {
				if r.Maintenance == nil {
					return
				}
				for _, st := range []string{report.NoSpaceNone, report.NoSpaceRecovering, report.NoSpaceKept} {
					e(boolValue(r.Maintenance.NoSpace.State == st), st)
				}
			}},
		{"snapshot_last_timestamp_seconds", "When the cluster's newest snapshot was taken, by any agent (Unix time).", prometheus.GaugeValue, nil,
			func(r report.NodeReport, e emit) {
				if b := r.Backup; b != nil && b.Last != nil {
					e(unix(b.Last.Time))
				}
			}},
		{"snapshot_last_revision", "The revision of the cluster's newest snapshot.", prometheus.GaugeValue, nil,
			func(r report.NodeReport, e emit) {
				if b := r.Backup; b != nil && b.Last != nil {
					e(float64(b.Last.Revision))
				}
			}},
		{"snapshot_last_verified", "1 when the newest verification of a snapshot (a restore into a throw-away member) succeeded, 0 when it failed.", prometheus.GaugeValue, nil,
			func(r report.NodeReport, e emit) {
				if b := r.Backup; b != nil && b.Verification != nil {
					e(boolValue(b.Verification.OK))
				}
			}},
		{"fleetlock_slots_held", "How many reboot slots (FleetLock) each Zincati group holds, as this agent last read them.", prometheus.GaugeValue, []string{"group"},
			func(r report.NodeReport, e emit) {
				if r.FleetLock == nil {
					return
				}
				held := map[string]int{"default": 0}
				for _, h := range r.FleetLock.Holders {
					held[h.Group]++
				}
				for _, g := range slices.Sorted(maps.Keys(held)) {
					e(float64(held[g]), g)
				}
			}},
		{"fleetlock_holder_since_timestamp_seconds", "When each reboot slot's holder (FleetLock) took it (Unix time): alert on one held for long.", prometheus.GaugeValue, []string{"group", "id", "member"},
			func(r report.NodeReport, e emit) {
				if r.FleetLock == nil {
					return
				}
				for _, h := range r.FleetLock.Holders {
					e(unix(h.Since), h.Group, h.ID, h.Member)
				}
			}},
		{"snapshot_interval_seconds", "The configured snapshot interval: alert when time() - snapshot_last_timestamp_seconds exceeds twice this.", prometheus.GaugeValue, nil,
			func(r report.NodeReport, e emit) {
				if b := r.Backup; b != nil {
					e(b.Interval.Seconds())
				}
			}},
	}
}

// maintenanceMembers are the members the last maintenance round measured
// (none before the first round, or for a member that did not answer).
func maintenanceMembers(r report.NodeReport) []report.MemberSpace {
	if r.Maintenance == nil {
		return nil
	}
	var out []report.MemberSpace
	for _, m := range r.Maintenance.Members {
		if m.Error == "" {
			out = append(out, m)
		}
	}
	return out
}

// Names lists the full name of every agent metric (etcd_agent_…).
func Names() []string {
	var out []string
	for _, f := range families() {
		out = append(out, prometheus.BuildFQName(Namespace, "", f.name))
	}
	return out
}

// Collector exposes the agent's metrics, read from report at each scrape.
type Collector struct {
	report   func() report.NodeReport
	families []family
	descs    []*prometheus.Desc
}

// NewCollector reads the agent's state with report (e.g. Recorder.Snapshot)
// at each scrape.
func NewCollector(report func() report.NodeReport) *Collector {
	c := &Collector{report: report, families: families()}
	for _, f := range c.families {
		c.descs = append(c.descs, prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", f.name), f.help, f.labels, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.report()
	for i, f := range c.families {
		f.collect(r, func(v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(c.descs[i], f.kind, v, labels...)
		})
	}
}

// NewRegistry is a registry with the agent's metrics and the Go runtime and
// process metrics (go_*, process_*) of the agent's own process.
func NewRegistry(report func() report.NodeReport) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(report), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
