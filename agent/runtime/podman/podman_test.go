package podman_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"

	"github.com/etcd-agent/etcd-agent/agent/runtime/internal/testenv"
	"github.com/etcd-agent/etcd-agent/agent/runtime/podman"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestSocketMissing needs no Podman: the error names the socket and the fix.
func TestSocketMissing(t *testing.T) {
	cases := map[string]string{
		"unix:///run/user/4242/podman/podman.sock": "podman socket /run/user/4242/podman/podman.sock not found: enable it with `systemctl --user enable --now podman.socket`",
		"unix:///nonexistent/podman.sock":          "podman socket /nonexistent/podman.sock not found: enable it with `systemctl enable --now podman.socket`",
	}
	m := testenv.NewMember(t, "nosock", netip.MustParseAddr("127.0.0.31"), "")
	for uri, want := range cases {
		rt, err := podman.New(podman.Options{Socket: uri, Image: "gcr.io/etcd-development/etcd:v0"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = rt.Ensure(ctxFor(t, 10*time.Second), m.Spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Ensure via %s = %v; want %q", uri, err, want)
		}
	}
	if _, err := podman.New(podman.Options{Image: "x"}); err == nil || !strings.Contains(err.Error(), "socket: required") {
		t.Errorf("New without socket = %v", err)
	}
}

// TestImageMissing: an image that is not there and cannot be pulled (no
// registry here) gives the build/config hint, and no container is left.
func TestImageMissing(t *testing.T) {
	testenv.SkipShort(t)
	for i, s := range testenv.PodmanSockets(t) {
		t.Run(s.Name, func(t *testing.T) {
			m := testenv.NewMember(t, "noimage", netip.AddrFrom4([4]byte{127, 0, 0, byte(32 + i)}), s.User)
			img := "localhost/etcd-agent-no-such-image:v0"
			rt, err := podman.New(podman.Options{Socket: s.URI, Image: img, PullTimeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = rt.Ensure(ctxFor(t, time.Minute), m.Spec)
			want := "image " + img + " not present and pull failed: "
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "build it with `make image` or set etcd.image") {
				t.Fatalf("Ensure with missing image = %v; want %q ... hint", err, want)
			}
			if exists(t, s.URI, podman.DefaultContainerPrefix+"noimage") {
				t.Errorf("a container was left behind")
			}
		})
	}
}

// TestForeignContainer: a container with the member's name that etcd-agent did
// not create is never touched.
func TestForeignContainer(t *testing.T) {
	testenv.SkipShort(t)
	for i, s := range testenv.PodmanSockets(t) {
		t.Run(s.Name, func(t *testing.T) {
			member := "foreign"
			name := podman.DefaultContainerPrefix + member
			conn := connect(t, s.URI)
			remove := func() {
				_, _ = containers.Remove(conn, name, new(containers.RemoveOptions).WithForce(true).WithIgnore(true))
			}
			remove()
			t.Cleanup(remove)
			g := specgen.NewSpecGenerator(testenv.Image(t), false)
			g.Name = name
			g.Command = []string{"/usr/local/bin/etcd", "--version"}
			g.Labels = map[string]string{"owner": "someone-else"}
			created, err := containers.CreateWithSpec(conn, g, nil)
			if err != nil {
				t.Fatalf("create foreign container: %v", err)
			}

			m := testenv.NewMember(t, member, netip.AddrFrom4([4]byte{127, 0, 0, byte(34 + i)}), s.User)
			rt, err := podman.New(podman.Options{Socket: s.URI, Image: testenv.Image(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = rt.Ensure(ctxFor(t, time.Minute), m.Spec)
			want := "container " + name + " exists and is not managed by etcd-agent; remove it or set podman.containerName"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Ensure over a foreign container = %v; want %q", err, want)
			}
			data, err := containers.Inspect(conn, name, nil)
			if err != nil || data.ID != created.ID {
				t.Fatalf("foreign container was touched: inspect = %v, %v", data, err)
			}

			// With another container name the member starts beside it.
			rt2, err := podman.New(podman.Options{Socket: s.URI, Image: testenv.Image(t), ContainerName: name + "-managed",
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_, _ = containers.Remove(conn, name+"-managed", new(containers.RemoveOptions).WithForce(true).WithIgnore(true).WithTimeout(0))
			})
			if act, err := rt2.Ensure(ctxFor(t, time.Minute), m.Spec); err != nil {
				t.Fatalf("Ensure with podman.containerName set = %q, %v", act, err)
			}
			data, err = containers.Inspect(conn, name+"-managed", nil)
			if err != nil {
				t.Fatal(err)
			}
			if data.Config.Labels[podman.LabelManaged] != "true" || len(data.Config.Labels[podman.LabelSpecHash]) != 64 {
				t.Errorf("labels = %v", data.Config.Labels)
			}
			if s.User != "" {
				// keep-id: etcd runs as the rootless user's own uid:gid.
				u, err := user.Lookup(s.User)
				if err != nil {
					t.Fatal(err)
				}
				if want := u.Uid + ":" + u.Gid; data.Config.User != want {
					t.Errorf("rootless container runs as %q, want %s (keep-id)", data.Config.User, want)
				}
			}
			if data.HostConfig.NetworkMode != "host" {
				t.Errorf("network mode = %q, want host", data.HostConfig.NetworkMode)
			}
		})
	}
}

func connect(t *testing.T, uri string) context.Context {
	t.Helper()
	conn, err := bindings.NewConnection(ctxFor(t, 2*time.Minute), uri)
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	return conn
}

func exists(t *testing.T, uri, name string) bool {
	t.Helper()
	ok, err := containers.Exists(connect(t, uri), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
