package runtime_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"

	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/runtime/embedded"
	"github.com/etcd-agent/etcd-agent/agent/runtime/internal/testenv"
	"github.com/etcd-agent/etcd-agent/agent/runtime/podman"
)

// harness is one runtime under test; the lifecycle is written once against it.
type harness struct {
	name  string
	ip    netip.Addr
	owner string // user owning the member's dirs (rootless Podman)
	// newRuntime returns a fresh runtime value, as a restarted agent makes.
	newRuntime func(t *testing.T) runtime.Runtime
	// survivesAgentRestart: a new runtime value adopts the running instance
	// (Podman). Embedded etcd lives in the agent process and cannot.
	survivesAgentRestart bool
	kill                 func(t *testing.T, rt runtime.Runtime)
	id                   func(rt runtime.Runtime) string // instance identity, "" if none
	cleanup              func(t *testing.T, member string)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func harnesses(t *testing.T) []harness {
	hs := []harness{{
		name: "embedded",
		ip:   netip.MustParseAddr("127.0.0.21"),
		newRuntime: func(t *testing.T) runtime.Runtime {
			rt := embedded.New(embedded.Options{Logger: testLogger(t), StopTimeout: 10 * time.Second})
			t.Cleanup(func() { _ = rt.Stop(context.Background()) })
			return rt
		},
		kill: func(t *testing.T, rt runtime.Runtime) {
			if err := rt.(*embedded.Runtime).Kill(context.Background()); err != nil {
				t.Fatalf("kill: %v", err)
			}
		},
		id: func(runtime.Runtime) string { return "" },
	}}
	if testing.Short() {
		return hs
	}
	for i, s := range testenv.PodmanSockets(t) {
		image := testenv.Image(t)
		hs = append(hs, harness{
			name:                 "podman-" + s.Name,
			ip:                   netip.AddrFrom4([4]byte{127, 0, 0, byte(22 + i)}),
			owner:                s.User,
			survivesAgentRestart: true,
			newRuntime: func(t *testing.T) runtime.Runtime {
				rt, err := podman.New(podman.Options{Socket: s.URI, Image: image, Logger: testLogger(t), StopTimeout: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				return rt
			},
			kill: func(t *testing.T, rt runtime.Runtime) {
				// As an OOM kill or a crash would: SIGKILL through the API.
				ctx := podmanConn(t, s.URI)
				if err := containers.Kill(ctx, rt.(*podman.Runtime).ContainerID(), new(containers.KillOptions).WithSignal("KILL")); err != nil {
					t.Fatalf("podman kill: %v", err)
				}
			},
			id: func(rt runtime.Runtime) string { return rt.(*podman.Runtime).ContainerID() },
			cleanup: func(t *testing.T, member string) {
				ctx := podmanConn(t, s.URI)
				_, _ = containers.Remove(ctx, podman.DefaultContainerPrefix+member,
					new(containers.RemoveOptions).WithForce(true).WithIgnore(true).WithTimeout(0))
			},
		})
	}
	return hs
}

func podmanConn(t *testing.T, uri string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	conn, err := bindings.NewConnection(ctx, uri)
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	return conn
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestLifecycle: start with TLS, read and write; an agent restart adopts the
// running member; a killed member is brought back by Supervise with its data;
// a spec change replaces it.
func TestLifecycle(t *testing.T) {
	for _, h := range harnesses(t) {
		t.Run(h.name, func(t *testing.T) {
			member := "lc-" + strings.ReplaceAll(h.name, "-", "")
			m := testenv.NewMember(t, member, h.ip, h.owner)
			if h.cleanup != nil {
				h.cleanup(t, member)
				t.Cleanup(func() { h.cleanup(t, member) })
			}
			rt := h.newRuntime(t)

			act, err := rt.Ensure(ctxFor(t, 2*time.Minute), m.Spec)
			if err != nil || act != runtime.ActionStarted {
				t.Fatalf("first Ensure = %q, %v; want started", act, err)
			}
			firstID := h.id(rt)
			c := m.Client(t)
			m.Put(t, c, "greeting", "hello", 30*time.Second)
			m.Get(t, c, "greeting", "hello", 5*time.Second)

			// Ensure again with the same spec: nothing restarts.
			if act, err := rt.Ensure(ctxFor(t, time.Minute), m.Spec); err != nil || act != runtime.ActionAdopted {
				t.Fatalf("repeated Ensure = %q, %v; want adopted", act, err)
			}

			// The agent is SIGKILLed and restarts: a new runtime value.
			if h.survivesAgentRestart {
				rt = h.newRuntime(t)
				if up, err := rt.Running(ctxFor(t, time.Minute)); err != nil || up {
					t.Fatalf("Running before any Ensure = %v, %v; want false (nothing known yet)", up, err)
				}
				act, err := rt.Ensure(ctxFor(t, time.Minute), m.Spec)
				if err != nil || act != runtime.ActionAdopted {
					t.Fatalf("Ensure after agent restart = %q, %v; want adopted", act, err)
				}
				if got := h.id(rt); got != firstID {
					t.Fatalf("adopted container %s, want the running %s", got, firstID)
				}
			} else {
				if err := rt.Stop(ctxFor(t, time.Minute)); err != nil {
					t.Fatalf("Stop: %v", err)
				}
				rt = h.newRuntime(t)
				if act, err := rt.Ensure(ctxFor(t, time.Minute), m.Spec); err != nil || act != runtime.ActionStarted {
					t.Fatalf("Ensure after agent restart = %q, %v; want started", act, err)
				}
			}
			m.Get(t, c, "greeting", "hello", 30*time.Second)

			// Supervise adopts, then brings a killed member back.
			events := make(chan runtime.Event, 64)
			sctx, stopSupervise := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- runtime.Supervise(sctx, rt, m.Spec, runtime.SuperviseOptions{
					Logger: testLogger(t), MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
					OnEvent: func(e runtime.Event) { events <- e },
				})
			}()
			defer func() {
				stopSupervise()
				<-done
			}()
			expect(t, events, runtime.EventEnsured, func(e runtime.Event) bool { return e.Action == runtime.ActionAdopted })
			h.kill(t, rt)
			ev := expect(t, events, runtime.EventExited, nil)
			t.Logf("exit seen by Supervise: %s", ev)
			if strings.HasPrefix(h.name, "podman") && ev.Exit.ExitCode != 137 {
				t.Errorf("exit code %d, want 137 (SIGKILL)", ev.Exit.ExitCode)
			}
			expect(t, events, runtime.EventEnsured, func(e runtime.Event) bool { return e.Action == runtime.ActionStarted })
			m.Get(t, c, "greeting", "hello", 30*time.Second)
			m.Put(t, c, "after-crash", "yes", 10*time.Second)
			restartedID := h.id(rt)
			stopSupervise()
			if err := <-done; err != nil {
				t.Fatalf("Supervise returned %v", err)
			}
			done <- nil
			// Supervise leaves the member running when it returns.
			if up, err := rt.Running(ctxFor(t, time.Minute)); err != nil || !up {
				t.Fatalf("Running after Supervise returned = %v, %v; want true", up, err)
			}

			// A spec change replaces the instance.
			changed := m.Spec
			changed.QuotaBackendBytes = 1 << 30
			if act, err := rt.Ensure(ctxFor(t, 2*time.Minute), changed); err != nil || act != runtime.ActionReplaced {
				t.Fatalf("Ensure with new quota = %q, %v; want replaced", act, err)
			}
			if id := h.id(rt); id != "" && id == restartedID {
				t.Errorf("replaced container kept ID %s", id)
			}
			m.Get(t, c, "after-crash", "yes", 30*time.Second)

			if err := rt.Stop(ctxFor(t, time.Minute)); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if up, err := rt.Running(ctxFor(t, time.Minute)); err != nil || up {
				t.Fatalf("Running after Stop = %v, %v; want false", up, err)
			}
			if h.owner != "" {
				assertOwnedBy(t, m.Spec.DataDir+"/member", h.owner)
			}
		})
	}
}

// expect waits for an event of kind (matching ok, if given), skipping others.
func expect(t *testing.T, events <-chan runtime.Event, kind runtime.EventKind, ok func(runtime.Event) bool) runtime.Event {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		select {
		case e := <-events:
			t.Logf("event: %s", e)
			if e.Kind == runtime.EventEnsureFailed {
				t.Logf("ensure failed: %v", e.Err)
			}
			if e.Kind == kind && (ok == nil || ok(e)) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event within 90s", kind)
		}
	}
}

func assertOwnedBy(t *testing.T, path, owner string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	uid := fileUID(st)
	want := lookupUID(t, owner)
	if uid != want {
		t.Errorf("%s is owned by uid %d, want %s (%d): keep-id not in effect", path, uid, owner, want)
	}
}
