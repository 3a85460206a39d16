package status

import (
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
)

func TestMaintenanceAndChangeLines(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := &report.Maintenance{
		Members: []report.MemberSpace{
			{Name: "etcd-10-0-1-5", Fragmentation: 0.62},
			{Name: "etcd-10-0-1-6", Fragmentation: 0.05},
			{Name: "etcd-10-0-1-7", Error: "no answer within 2s"},
		},
		LastDefrag: &report.Defrag{Member: "etcd-10-0-1-6", At: now.Add(-2 * time.Minute), WasLeader: true, MovedTo: "etcd-10-0-1-5",
			Before: 50 << 20, After: 10 << 20},
		NoSpace: report.NoSpace{State: report.NoSpaceNone},
		Next:    "defragmentation of etcd-10-0-1-5 waits: etcd-10-0-1-7 does not answer",
	}
	got := maintenanceLine(m, now)
	for _, want := range []string{"fragmentation etcd-10-0-1-5 62%, etcd-10-0-1-6 5%", "last defrag etcd-10-0-1-6",
		"50MiB → 10MiB", "leadership moved to etcd-10-0-1-5 first", "waits: etcd-10-0-1-7 does not answer"} {
		if !strings.Contains(got, want) {
			t.Errorf("maintenance line %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "etcd-10-0-1-7 0%") {
		t.Errorf("maintenance line %q shows a member that did not answer", got)
	}
	m.NoSpace.State = report.NoSpaceKept
	if got := maintenanceLine(m, now); !strings.Contains(got, "NOSPACE kept") {
		t.Errorf("maintenance line %q does not name the NOSPACE state", got)
	}
	if got := maintenanceLine(nil, now); got != "" {
		t.Errorf("no round yet: %q, want no line", got)
	}

	c := report.EtcdChange{State: "refused", Change: "image gcr.io/etcd-development/etcd:v3.7.3 → …:v3.6.16", Reason: "downgrade", Since: now.Add(-time.Minute)}
	if got := changeLine(c, now); !strings.HasPrefix(got, "refused ") || !strings.Contains(got, "(downgrade)") || !strings.Contains(got, "v3.6.16") {
		t.Errorf("change line %q", got)
	}
}
