package status

import (
	"encoding/json"
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

// TestRebootLine: status shows the reboot slot's holder, its group and
// since when, and this node's latest answer to Zincati; the JSON view
// carries the same report.
func TestRebootLine(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f := &report.FleetLock{Address: "127.0.0.1:2384", ReadAt: now, Holders: []report.FleetLockHolder{
		{ID: "f3a1", Group: "default", Member: "etcd-10-0-1-5", Since: now.Add(-90 * time.Second)},
	}, LastAnswer: &report.FleetLockAnswer{At: now.Add(-time.Minute), Operation: "pre-reboot", Granted: false, Kind: "slot_taken"}}
	got := rebootLine(f, now)
	for _, want := range []string{"slot held by f3a1 (etcd-10-0-1-5, group default) since 11:58:30 (1m30s)", "last pre-reboot refused (slot_taken) 11:59:00", "FleetLock on 127.0.0.1:2384"} {
		if !strings.Contains(got, want) {
			t.Errorf("reboot line %q lacks %q", got, want)
		}
	}
	f.Holders, f.LastAnswer = nil, nil
	if got := rebootLine(f, now); !strings.HasPrefix(got, "no reboot slot held") {
		t.Errorf("reboot line %q, want it to say no slot is held", got)
	}
	if got := rebootLine(nil, now); got != "" {
		t.Errorf("FleetLock not served: %q, want no line", got)
	}
	f.Window, f.WindowChange = "Sat,Sun 22:30 UTC for 3h0m0s", time.Date(2026, 12, 5, 22, 30, 0, 0, time.UTC)
	if got := rebootLine(f, now); !strings.Contains(got, "maintenance window Sat,Sun 22:30 UTC for 3h0m0s: closed, next opens 2026-12-05 22:30 (in 106h30m0s)") {
		t.Errorf("closed window: %q", got)
	}
	f.WindowOpen, f.WindowChange = true, now.Add(time.Hour)
	if got := rebootLine(f, now); !strings.Contains(got, "maintenance window Sat,Sun 22:30 UTC for 3h0m0s: open until 13:00:00") {
		t.Errorf("open window: %q", got)
	}
	v := View{Node: Node{FleetLock: &report.FleetLock{Address: "a", Holders: []report.FleetLockHolder{{ID: "f3a1", Group: "g", Since: now}}}}}
	b, err := json.Marshal(v)
	if err != nil || !strings.Contains(string(b), `"fleet_lock":{"address":"a","holders":[{"id":"f3a1","group":"g","slot":0,"member":"","since":"2026-12-01T12:00:00Z"}]`) {
		t.Errorf("JSON view %s (%v) lacks the holder", b, err)
	}
}
