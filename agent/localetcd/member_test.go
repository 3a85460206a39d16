package localetcd

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestClusterClientFollowsRecordedEndpoints: the client to the other
// members is dialled once, but the members change under a long-running
// agent (instance refreshes, spot replacements). Once its health probe has
// recorded the new members' client URLs, Cluster() reaches them, not the
// addresses of members long gone (TestYearOfChurn: a founder whose two
// peers had both been replaced refused every pre-reboot with
// "read the reboot slots: context deadline exceeded").
func TestClusterClientFollowsRecordedEndpoints(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caCert, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	pkiDir := filepath.Join(dir, "pki")
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: pkiDir, NodeIP: netip.MustParseAddr("127.0.0.2"), Validity: time.Hour, RenewBefore: time.Minute, Now: now}); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	m := New(Options{Config: &config.Config{Node: config.Node{DataDir: dataDir}, PKI: config.PKI{Dir: pkiDir}}, Logger: slog.New(slog.DiscardHandler)})
	m.setSpec(etcdconf.Spec{NodeIP: netip.MustParseAddr("127.0.0.2")})
	self := m.Spec().ClientURL()

	founders := []string{"https://127.0.0.1:2379", self, "https://127.0.0.3:2379"}
	if err := sidefile.WriteEndpoints(dataDir, founders); err != nil {
		t.Fatal(err)
	}
	cli, err := m.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.closeClients() })
	if got, want := cli.Endpoints(), []string{"https://127.0.0.1:2379", "https://127.0.0.3:2379"}; !slices.Equal(got, want) {
		t.Fatalf("first Cluster(): endpoints %v, want %v (the others, not this member)", got, want)
	}

	// Both peers replaced: the health probe records the new member list.
	now2 := []string{self, "https://127.0.0.4:2379", "https://127.0.0.5:2379"}
	if err := sidefile.WriteEndpoints(dataDir, now2); err != nil {
		t.Fatal(err)
	}
	again, err := m.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(again.Endpoints()))
	if want := []string{"https://127.0.0.4:2379", "https://127.0.0.5:2379"}; !slices.Equal(got, want) {
		t.Errorf("Cluster() after the members changed: endpoints %v, want %v (the members recorded last)", got, want)
	}
	if again != cli {
		t.Error("Cluster() dialled a new client: the jobs share one")
	}

	// Nothing recorded (a recovery forgot the endpoints): the client keeps
	// what it had.
	if err := sidefile.RemoveEndpoints(dataDir); err != nil {
		t.Fatal(err)
	}
	if kept, err := m.Cluster(); err != nil || len(kept.Endpoints()) == 0 {
		t.Errorf("Cluster() with no endpoints recorded: %v, %v; want the client as it was", kept.Endpoints(), err)
	}
}

func TestFollowEndpoints(t *testing.T) {
	const (
		self = "https://10.0.1.3:2379"
		n1   = "https://10.0.1.1:2379"
		n2   = "https://10.0.1.2:2379"
		n4   = "https://10.0.1.4:2379"
		n5   = "https://10.0.1.5:2379"
	)
	for _, tc := range []struct {
		name              string
		current, recorded []string
		want              []string // nil: keep the client's endpoints
	}{
		{"an instance refresh replaced both other founders", []string{n1, n2}, []string{n4, n5, self}, []string{n4, n5}},
		{"one member replaced", []string{n1, n2}, []string{n2, self, n4}, []string{n2, n4}},
		{"the same members, another order", []string{n2, n1}, []string{self, n1, n2}, nil},
		{"nothing recorded", []string{n1, n2}, nil, nil},
		{"only this node recorded", []string{n1, n2}, []string{self}, nil},
		{"a URL recorded twice (a member's two client URLs)", []string{n1}, []string{n4, n4}, []string{n4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := followEndpoints(tc.current, tc.recorded, self)
			if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
				t.Errorf("followEndpoints(%v, %v) = %v, %v; want %v", tc.current, tc.recorded, got, ok, tc.want)
			}
		})
	}
}
