package notifytest_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

func send(t *testing.T, path string, msgs ...string) {
	t.Helper()
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, m := range msgs {
		if _, err := conn.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUntilReadyReturnsSequence(t *testing.T) {
	for _, l := range []*notifytest.Listener{notifytest.New(t), notifytest.NewAbstract(t)} {
		send(t, l.Path(), "STATUS=discovery", "STATUS=joining", "READY=1\nSTATUS=healthy", "WATCHDOG=1")
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		got, err := l.UntilReady(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		want := "STATUS=discovery|STATUS=joining|READY=1\nSTATUS=healthy"
		if strings.Join(got, "|") != want {
			t.Fatalf("%s: got %q, want %q", l.Path(), got, want)
		}
		if s := notifytest.Field(got[2], "STATUS"); s != "healthy" {
			t.Fatalf("Field STATUS = %q", s)
		}
		// Seen holds everything received, including what follows READY.
		if seen := l.Seen(); len(seen) < 3 || strings.Join(seen[:3], "|") != want {
			t.Fatalf("Seen = %q, want it to start with the 3 datagrams up to READY", seen)
		}
	}
}

func TestNextStopsOnCancel(t *testing.T) {
	l := notifytest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := l.Next(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Next took %v to notice cancellation", d)
	}
	// The listener still works after a cancelled read.
	send(t, l.Path(), "WATCHDOG=1")
	ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if got, err := l.Next(ctx2); err != nil || got != "WATCHDOG=1" {
		t.Fatalf("Next after a cancelled read = %q, %v", got, err)
	}
}

func TestCollectReportsPartial(t *testing.T) {
	l := notifytest.New(t)
	send(t, l.Path(), "STATUS=a")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	got, err := l.Collect(ctx, 2)
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 1 || got[0] != "STATUS=a" {
		t.Fatalf("Collect = %q, %v; want [STATUS=a] and deadline exceeded", got, err)
	}
}
