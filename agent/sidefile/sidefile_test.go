package sidefile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
)

func TestLeaveMarker(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	if _, ok := ReadLeaveMarker(dataDir); ok {
		t.Fatal("a marker where none was written")
	}
	at := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	want := LeaveMarker{State: Leaving, Member: "etcd-10-0-1-5", MemberID: "8e9e05c52164694d", At: at, Note: "removing member etcd-10-0-1-5"}
	if err := WriteLeaveMarker(dataDir, want); err != nil {
		t.Fatal(err)
	}
	if got, ok := ReadLeaveMarker(dataDir); !ok || got != want {
		t.Fatalf("read back %+v (%v), want %+v", got, ok, want)
	}
	// Markers of older agents are text.
	for text, state := range map[string]LeaveState{
		"leaving since 2026-12-01T10:00:00Z: removing member a (1)\n":                             Leaving,
		"left at 2026-12-01T10:01:00Z as member a; delete this file to let the node join again\n": Left,
		"": Leaving,
	} {
		if err := os.WriteFile(LeaveMarkerPath(dataDir), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, ok := ReadLeaveMarker(dataDir); !ok || got.State != state {
			t.Errorf("text marker %q: %+v (%v), want state %s", text, got, ok, state)
		}
	}
	for range 2 { // removing a marker that is gone is fine
		if err := RemoveLeaveMarker(dataDir); err != nil {
			t.Fatal(err)
		}
		if _, ok := ReadLeaveMarker(dataDir); ok {
			t.Fatal("the marker is still there after RemoveLeaveMarker")
		}
	}
}

func TestEndpointsAndAppliedSpec(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	if eps := ReadEndpoints(dataDir); eps != nil {
		t.Fatalf("endpoints %v before any were written", eps)
	}
	if err := WriteEndpoints(dataDir, []string{"https://10.0.1.6:2379", "https://10.0.1.5:2379"}); err != nil {
		t.Fatal(err)
	}
	if eps := ReadEndpoints(dataDir); len(eps) != 2 || eps[0] != "https://10.0.1.5:2379" {
		t.Fatalf("endpoints %v, want both, sorted", eps)
	}
	if err := RemoveEndpoints(dataDir); err != nil || ReadEndpoints(dataDir) != nil {
		t.Fatalf("RemoveEndpoints: %v, left %v", err, ReadEndpoints(dataDir))
	}
	spec := etcdconf.Spec{Name: "etcd-10-0-1-5", Image: "gcr.io/etcd-development/etcd:v3.7.3", QuotaBackendBytes: 1 << 30,
		InitialCluster: "a=https://10.0.1.5:2380", InitialClusterState: "new", InitialClusterToken: "t"}
	if err := WriteAppliedSpec(dataDir, spec); err != nil {
		t.Fatal(err)
	}
	got, ok := ReadAppliedSpec(dataDir)
	if !ok || got.Image != spec.Image || got.QuotaBackendBytes != spec.QuotaBackendBytes {
		t.Fatalf("applied spec %+v (%v)", got, ok)
	}
	if got.InitialCluster != "" || got.InitialClusterState != "" || got.InitialClusterToken != "" {
		t.Errorf("bootstrap settings recorded: %+v", got)
	}
	if fi, err := os.Stat(AppliedSpecPath(dataDir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("applied spec file mode %v (%v), want 0600", fi.Mode(), err)
	}
}

func TestMembers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, ok := ReadMembers(dir); ok {
		t.Fatal("members read before any was written")
	}
	m := Members{ClusterID: "c1", Members: []Member{
		{Name: "n2", ID: "2", PeerURLs: []string{"https://10.0.0.2:2380"}},
		{Name: "n1", ID: "1", PeerURLs: []string{"https://10.0.0.1:2380"}, Learner: true},
	}}
	if err := WriteMembers(dir, m); err != nil {
		t.Fatal(err)
	}
	got, ok := ReadMembers(dir)
	if !ok || got.ClusterID != "c1" || len(got.Members) != 2 || got.Members[0].Name != "n1" || !got.Members[0].Learner {
		t.Fatalf("read back %+v, %v: want both members sorted by name", got, ok)
	}
}
