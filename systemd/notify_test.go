package systemd_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/systemd"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// expectNothing asserts no further datagram arrives within a short while.
func expectNothing(t *testing.T, l *notifytest.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if msg, err := l.Next(ctx); err == nil {
		t.Fatalf("unexpected notification %q", msg)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: want deadline exceeded, got %v", err)
	}
}

func TestNotifierSendsExactDatagrams(t *testing.T) {
	for _, sock := range []struct {
		name string
		new  func(testing.TB) *notifytest.Listener
	}{{"path", notifytest.New}, {"abstract", notifytest.NewAbstract}} {
		t.Run(sock.name, func(t *testing.T) {
			l := sock.new(t)
			n := systemd.NewNotifier(l.Path(), slog.New(slog.DiscardHandler))
			if !n.Enabled() {
				t.Fatal("Enabled() = false with a socket")
			}
			steps := []struct {
				send func() error
				want string
			}{
				{func() error { return n.Status("waiting for 2 more members in discovery") }, "STATUS=waiting for 2 more members in discovery"},
				{func() error { return n.Ready("healthy, leader etcd-10-0-1-5, 3/3 voters") }, "READY=1\nSTATUS=healthy, leader etcd-10-0-1-5, 3/3 voters"},
				{n.Watchdog, "WATCHDOG=1"},
				{func() error { return n.ExtendTimeout(90 * time.Second) }, "EXTEND_TIMEOUT_USEC=90000000"},
				{func() error { return n.Stopping("shutting down") }, "STOPPING=1\nSTATUS=shutting down"},
				{func() error { return n.Ready("") }, "READY=1"},
				{func() error { return n.Status("line one\nREADY=1") }, "STATUS=line one READY=1"},
			}
			ctx := ctxT(t)
			for _, s := range steps {
				if err := s.send(); err != nil {
					t.Fatalf("send %q: %v", s.want, err)
				}
				got, err := l.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got != s.want {
					t.Fatalf("datagram = %q, want %q", got, s.want)
				}
			}
			expectNothing(t, l)
		})
	}
}

func TestNotifierReloadingCarriesMonotonicTimestamp(t *testing.T) {
	l := notifytest.New(t)
	n := systemd.NewNotifier(l.Path(), nil)
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	got, err := l.Next(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*$`).MatchString(got) {
		t.Fatalf("datagram = %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
}

func TestNotifierStatusDedupe(t *testing.T) {
	l := notifytest.New(t)
	n := systemd.NewNotifier(l.Path(), nil)
	for _, s := range []string{"discovery", "discovery", "", "learner, catching up 71%", "learner, catching up 71%"} {
		if err := n.Status(s); err != nil {
			t.Fatal(err)
		}
	}
	// Ready with a status records it: the same Status afterwards is a repeat.
	if err := n.Ready("healthy"); err != nil {
		t.Fatal(err)
	}
	if err := n.Status("healthy"); err != nil {
		t.Fatal(err)
	}
	// Other messages do not reset the last status.
	if err := n.Watchdog(); err != nil {
		t.Fatal(err)
	}
	if err := n.Status("healthy"); err != nil {
		t.Fatal(err)
	}
	if err := n.Status("degraded"); err != nil {
		t.Fatal(err)
	}
	got, err := l.Collect(ctxT(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"STATUS=discovery", "STATUS=learner, catching up 71%", "READY=1\nSTATUS=healthy", "WATCHDOG=1", "STATUS=degraded"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("datagrams = %q, want %q", got, want)
	}
	expectNothing(t, l)
}

func TestNotifierWithoutSocketIsNoOp(t *testing.T) {
	var logs bytes.Buffer
	n := systemd.NewNotifier("", slog.New(slog.NewTextHandler(&logs, nil)))
	if n.Enabled() {
		t.Fatal("Enabled() = true without a socket")
	}
	for name, call := range map[string]func() error{
		"Ready":         func() error { return n.Ready("x") },
		"Status":        func() error { return n.Status("x") },
		"Watchdog":      n.Watchdog,
		"Stopping":      func() error { return n.Stopping("x") },
		"Reloading":     n.Reloading,
		"ExtendTimeout": func() error { return n.ExtendTimeout(time.Second) },
	} {
		if err := call(); err != nil {
			t.Errorf("%s: %v, want nil", name, err)
		}
	}
	if logs.Len() != 0 {
		t.Fatalf("logged without a socket: %s", logs.String())
	}
}

func TestNotifierLogsFailureOnce(t *testing.T) {
	l := notifytest.New(t)
	var logs bytes.Buffer
	n := systemd.NewNotifier(l.Path(), slog.New(slog.NewTextHandler(&logs, nil)))

	if err := n.Status("one"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Next(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(l.Path()); err != nil {
		t.Fatal(err)
	}

	for i := range 5 {
		err := n.Watchdog()
		if err == nil {
			t.Fatalf("Watchdog #%d to a removed socket: nil error", i)
		}
		if !strings.Contains(err.Error(), l.Path()) {
			t.Fatalf("error %q does not name the socket", err)
		}
	}
	if err := n.Status("two"); err == nil {
		t.Fatal("Status to a removed socket: nil error")
	}
	if got := strings.Count(logs.String(), "level=WARN"); got != 1 {
		t.Fatalf("logged %d warnings, want 1:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), l.Path()) {
		t.Fatalf("warning does not name the socket:\n%s", logs.String())
	}
}

func TestNotifierRecoversAndLogsAgain(t *testing.T) {
	l := notifytest.New(t)
	path := l.Path()
	var logs bytes.Buffer
	n := systemd.NewNotifier(path, slog.New(slog.NewTextHandler(&logs, nil)))
	l.Close()
	os.Remove(path)
	if err := n.Status("a"); err == nil {
		t.Fatal("send to a removed socket: nil error")
	}

	// The service manager comes back on the same path.
	l2 := notifytest.At(t, path)
	if err := n.Status("a"); err != nil {
		t.Fatalf("send after recovery: %v", err)
	}
	if got, err := l2.Next(ctxT(t)); err != nil || got != "STATUS=a" {
		t.Fatalf("after recovery got %q, %v; want STATUS=a", got, err)
	}
	l2.Close()
	os.Remove(path)
	if err := n.Watchdog(); err == nil {
		t.Fatal("send to a removed socket: nil error")
	}
	if got := strings.Count(logs.String(), "level=WARN"); got != 2 {
		t.Fatalf("logged %d warnings across two outages, want 2:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "recovered") {
		t.Fatalf("recovery not logged:\n%s", logs.String())
	}
}
