package runtime_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/runtime/internal/testenv"
)

// TestPortInUse: a port already bound is reported before etcd starts, naming
// the port and the process holding it, by every runtime.
func TestPortInUse(t *testing.T) {
	for _, h := range harnesses(t) {
		t.Run(h.name, func(t *testing.T) {
			member := "port-" + strings.ReplaceAll(h.name, "-", "")
			m := testenv.NewMember(t, member, h.ip, h.owner)
			if h.cleanup != nil {
				t.Cleanup(func() { h.cleanup(t, member) })
			}
			for _, role := range []string{"client", "peer"} {
				port := m.Spec.ClientPort
				if role == "peer" {
					port = m.Spec.PeerPort
				}
				addr := netip.AddrPortFrom(h.ip, uint16(port)).String()
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				_, err = h.newRuntime(t).Ensure(ctxFor(t, time.Minute), m.Spec)
				ln.Close()
				want := regexp.MustCompile(role + ` port ` + regexp.QuoteMeta(addr) +
					` is already in use by pid ` + strconv.Itoa(os.Getpid()) + ` \(.+\): stop it or change etcd\.` + role + `Port`)
				if err == nil || !want.MatchString(err.Error()) {
					t.Fatalf("Ensure with %s port taken = %v; want it to match %q", role, err, want)
				}
			}
		})
	}
}

// TestDataDirNotWritable: the data dir is probed before etcd starts.
func TestDataDirNotWritable(t *testing.T) {
	for _, h := range harnesses(t) {
		t.Run(h.name, func(t *testing.T) {
			member := "ro-" + strings.ReplaceAll(h.name, "-", "")
			m := testenv.NewMember(t, member, h.ip, h.owner)
			if h.cleanup != nil {
				t.Cleanup(func() { h.cleanup(t, member) })
			}
			m.Spec.DataDir = readOnlyDir(t)
			_, err := h.newRuntime(t).Ensure(ctxFor(t, time.Minute), m.Spec)
			if err == nil || !strings.Contains(err.Error(), "data dir "+m.Spec.DataDir+" is not writable") {
				t.Fatalf("Ensure with read-only data dir = %v; want a 'not writable' error naming it", err)
			}
		})
	}
}

// readOnlyDir is a directory this process cannot create files in: mode 0500
// for a normal user; root ignores modes, so a read-only filesystem then.
func readOnlyDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		d := t.TempDir()
		if err := os.Chmod(d, 0o500); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// /proc/sys is read-only for files it does not define, for root too.
	if f, err := os.CreateTemp("/proc/sys", "probe"); err == nil {
		f.Close()
		t.Skip("no read-only directory available")
	}
	return "/proc/sys"
}

// TestSuperviseReportsCrashLoop: a member that exits right after every start
// is restarted with growing delays and reported as crash-looping, not hidden.
func TestSuperviseReportsCrashLoop(t *testing.T) {
	for _, h := range harnesses(t) {
		if h.name == "podman-rootless" {
			continue // same code path as rootful; keep the suite short
		}
		t.Run(h.name, func(t *testing.T) {
			member := "loop-" + strings.ReplaceAll(h.name, "-", "")
			m := testenv.NewMember(t, member, h.ip, h.owner)
			if h.cleanup != nil {
				t.Cleanup(func() { h.cleanup(t, member) })
			}
			rt := h.newRuntime(t)
			if _, err := rt.Ensure(ctxFor(t, time.Minute), m.Spec); err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			events := make(chan runtime.Event, 256)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- runtime.Supervise(ctx, rt, m.Spec, runtime.SuperviseOptions{
					Logger: testLogger(t), MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
					CrashLoopRestarts: 3, CrashLoopWindow: time.Minute,
					OnEvent: func(e runtime.Event) { events <- e },
				})
			}()
			defer func() { cancel(); <-done }()
			// Kill the member every time it comes up.
			killer := make(chan struct{})
			go func() {
				defer close(killer)
				for {
					select {
					case <-ctx.Done():
						return
					case e := <-events:
						t.Logf("event: %s", e)
						switch e.Kind {
						case runtime.EventEnsured:
							time.Sleep(300 * time.Millisecond)
							h.kill(t, rt)
						case runtime.EventCrashLoop:
							if e.Restarts < 3 {
								t.Errorf("crash loop reported after %d restarts, want >= 3", e.Restarts)
							}
							return
						}
					}
				}
			}()
			select {
			case <-killer:
			case <-time.After(2 * time.Minute):
				t.Fatal("no crash-loop event within 2m")
			}
		})
	}
}
