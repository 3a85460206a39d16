// Package notifytest is a real sd_notify socket for tests: a unix datagram
// listener that stands in for systemd's NOTIFY_SOCKET and hands back the
// datagrams it receives, so a test can assert the exact notification sequence
// (STATUS=…, READY=1, WATCHDOG=1, STOPPING=1) a component sends.
package notifytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// maxDatagram is larger than any notification systemd accepts.
const maxDatagram = 64 * 1024

// Listener receives sd_notify datagrams. Like systemd it reads them as they
// arrive (a unix datagram queue holds only a few, and a sender must never
// block on a test that is busy elsewhere) and queues them for Next. It is
// safe for concurrent use; concurrent readers each get different datagrams.
type Listener struct {
	conn *net.UnixConn
	path string

	mu      sync.Mutex
	queue   []string      // received, not yet returned by Next
	seen    []string      // everything received
	readErr error         // why the reader stopped
	arrived chan struct{} // closed (and replaced) when a datagram arrives
}

// New listens on a fresh socket file in a short temporary directory (socket
// paths are limited to 107 bytes, which t.TempDir can exceed). The socket is
// closed and removed when the test ends.
func New(t testing.TB) *Listener {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdnotify")
	if err != nil {
		t.Fatalf("create socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return At(t, filepath.Join(dir, "notify.sock"))
}

// NewAbstract listens on a socket in Linux's abstract namespace, named like
// systemd's own ("@/org/…"): Path starts with '@'.
func NewAbstract(t testing.TB) *Listener {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("generate socket name: %v", err)
	}
	return At(t, "@etcd-agent/notifytest/"+hex.EncodeToString(b))
}

// At listens on the given path ('@' for the abstract namespace), for example
// to bring a notify socket back where an earlier Listener was. The socket is
// closed when the test ends; removing a socket file is the caller's job.
func At(t testing.TB, path string) *Listener {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on notify socket %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	l := &Listener{conn: conn, path: path, arrived: make(chan struct{})}
	go l.read()
	return l
}

// read receives datagrams until the socket is closed.
func (l *Listener) read() {
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := l.conn.ReadFromUnix(buf)
		l.mu.Lock()
		if err != nil {
			l.readErr = err
			close(l.arrived)
			l.mu.Unlock()
			return
		}
		msg := string(buf[:n])
		l.queue = append(l.queue, msg)
		l.seen = append(l.seen, msg)
		close(l.arrived)
		l.arrived = make(chan struct{})
		l.mu.Unlock()
	}
}

// Path is the socket address to pass as NOTIFY_SOCKET.
func (l *Listener) Path() string { return l.path }

// Close stops listening; later sends to Path fail.
func (l *Listener) Close() error { return l.conn.Close() }

// Next returns the next datagram, waiting until one arrives or ctx ends.
func (l *Listener) Next(ctx context.Context) (string, error) {
	for {
		l.mu.Lock()
		if len(l.queue) > 0 {
			msg := l.queue[0]
			l.queue = l.queue[1:]
			l.mu.Unlock()
			return msg, nil
		}
		if err := l.readErr; err != nil {
			l.mu.Unlock()
			if errors.Is(err, net.ErrClosed) {
				err = errors.New("listener closed")
			}
			return "", fmt.Errorf("wait for notification: %w", err)
		}
		arrived := l.arrived
		l.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("wait for notification: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for notification: %w", ctx.Err())
		case <-arrived:
		}
	}
}

// Collect returns the next n datagrams, or those received so far and an
// error when ctx ends first.
func (l *Listener) Collect(ctx context.Context, n int) ([]string, error) {
	var got []string
	for len(got) < n {
		msg, err := l.Next(ctx)
		if err != nil {
			return got, fmt.Errorf("collect %d notifications, got %d %q: %w", n, len(got), got, err)
		}
		got = append(got, msg)
	}
	return got, nil
}

// Until reads datagrams until one satisfies match and returns all of them,
// the matching one last. When ctx ends first it returns those received and
// an error.
func (l *Listener) Until(ctx context.Context, match func(msg string) bool) ([]string, error) {
	var got []string
	for {
		msg, err := l.Next(ctx)
		if err != nil {
			return got, fmt.Errorf("wait for matching notification after %q: %w", got, err)
		}
		got = append(got, msg)
		if match(msg) {
			return got, nil
		}
	}
}

// UntilReady reads datagrams up to and including the first with READY=1.
func (l *Listener) UntilReady(ctx context.Context) ([]string, error) {
	return l.Until(ctx, func(msg string) bool { return Field(msg, "READY") == "1" })
}

// Seen returns every datagram received so far, oldest first.
func (l *Listener) Seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

// Field returns the value of KEY in a notification ("STATUS" in
// "READY=1\nSTATUS=healthy" gives "healthy"), or "" when absent.
func Field(msg, key string) string {
	for _, line := range strings.Split(msg, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return ""
}
