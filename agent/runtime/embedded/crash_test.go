package embedded

import (
	"log/slog"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/internal/zapslog"
)

// TestCrashHookEndsOnlyTheGoroutine: a Panic log through the hooked logger
// (as etcd writes one) ends the goroutine that wrote it and reports the
// message, instead of panicking the process.
func TestCrashHookEndsOnlyTheGoroutine(t *testing.T) {
	h := newCrashHook()
	lg := zapslog.New(slog.New(slog.DiscardHandler)).WithOptions(zap.WithPanicHook(h))
	after := make(chan bool, 1)
	go func() {
		defer func() { after <- recover() == nil }()
		lg.Panic("failed to find local ID in cluster members")
		t.Error("the goroutine went on after the Panic log")
	}()
	select {
	case msg := <-h.fatal:
		if msg != "failed to find local ID in cluster members" {
			t.Errorf("fatal = %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fatal report")
	}
	if clean := <-after; !clean {
		t.Error("the goroutine panicked")
	}
}
