package report

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// TestMaintenanceSnapshotIsACopy: a snapshot's maintenance state does not
// change with later updates, and survives the file round trip.
func TestMaintenanceSnapshotIsACopy(t *testing.T) {
	rec := NewRecorder(NodeReport{}, nil)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rec.Update(func(r *NodeReport) {
		r.Maintenance = &Maintenance{
			Members:    []MemberSpace{{Name: "a", DBSize: 100, DBSizeInUse: 20, Fragmentation: 0.8}},
			LastDefrag: &Defrag{Member: "a", At: at, Before: 100, After: 20},
			Defrags:    []Defrag{{Member: "a", At: at}},
			NoSpace:    NoSpace{State: NoSpaceKept, Message: "the live data does not fit", Since: at},
		}
	})
	snap := rec.Snapshot()
	rec.Update(func(r *NodeReport) {
		r.Maintenance.Members[0].DBSize = 1
		r.Maintenance.LastDefrag.Member = "b"
		r.Maintenance.Defrags[0].Member = "b"
	})
	m := snap.Maintenance
	if m.Members[0].DBSize != 100 || m.LastDefrag.Member != "a" || m.Defrags[0].Member != "a" {
		t.Errorf("snapshot changed with the recorder: %+v", m)
	}
	path := filepath.Join(t.TempDir(), "status.json")
	if err := Write(path, snap); err != nil {
		t.Fatal(err)
	}
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(snap.Maintenance)
	b, _ := json.Marshal(back.Maintenance)
	if string(a) != string(b) {
		t.Errorf("round trip:\n%s\n%s", a, b)
	}
}
