package podman

import (
	"net/netip"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
)

// A spec's own image runs it and is part of its hash (a rolling upgrade
// replaces the container); without one the configured image does, with the
// hash a container created before specs carried images has.
func TestSpecImage(t *testing.T) {
	r, err := New(Options{Socket: "unix:///nonexistent.sock", Image: "gcr.io/etcd-development/etcd:v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	s := etcdconf.Spec{Name: "n1", DataDir: "/d", NodeIP: netip.MustParseAddr("10.0.0.1"), CertDir: "/p"}
	same := s
	same.Image = "gcr.io/etcd-development/etcd:v3.7.3"
	other := s
	other.Image = "gcr.io/etcd-development/etcd:v3.6.16"
	if r.specHash(s, false) != r.specHash(same, false) {
		t.Error("a spec naming the configured image hashes differently from one naming none")
	}
	if r.specHash(s, false) == r.specHash(other, false) {
		t.Error("a spec with another image has the same hash")
	}
	if got := r.containerSpec(other, "c", "h", false).Image; got != other.Image {
		t.Errorf("container image %q, want %q", got, other.Image)
	}
	if got := r.containerSpec(s, "c", "h", false).Image; got != "gcr.io/etcd-development/etcd:v3.7.3" {
		t.Errorf("container image %q, want the configured one", got)
	}
}
