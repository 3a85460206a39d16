package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
)

// lateRuntime is a runtime whose socket answers only from the nth dial on,
// like the user's podman.socket before the user manager is up at boot.
type lateRuntime struct {
	runtime.Runtime
	dials, answerFrom int
}

func (r *lateRuntime) Prepare(context.Context) error {
	r.dials++
	if r.dials < r.answerFrom {
		return errors.New("podman socket /run/user/1000/podman/podman.sock not found")
	}
	return nil
}

func waitRuntimeAgent(t *testing.T, rt runtime.Runtime) *Agent {
	t.Helper()
	cfg := &config.Config{}
	cfg.Agent.StatusFile = filepath.Join(t.TempDir(), "status.json")
	a, err := New(Options{Config: cfg, Identity: identity.Static{}, Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestWaitRuntimeRetriesUntilTheSocketAnswers: a runtime that does not
// answer yet is waited for (the founder's started record is written only
// after this), not turned into an exit.
func TestWaitRuntimeRetriesUntilTheSocketAnswers(t *testing.T) {
	rt := &lateRuntime{answerFrom: 3}
	a := waitRuntimeAgent(t, rt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.waitRuntime(ctx); err != nil {
		t.Fatalf("waitRuntime: %v", err)
	}
	if rt.dials != 3 {
		t.Fatalf("dials = %d, want 3 (two failures, then the answer)", rt.dials)
	}
}

// TestWaitRuntimeStopsWithTheContext: shutdown while waiting ends the wait
// with an error saying what it waited for.
func TestWaitRuntimeStopsWithTheContext(t *testing.T) {
	a := waitRuntimeAgent(t, &lateRuntime{answerFrom: 1 << 30})
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	err := a.waitRuntime(ctx)
	if err == nil || !strings.Contains(err.Error(), "connecting to the etcd runtime") {
		t.Fatalf("waitRuntime after cancel = %v, want an error naming the wait", err)
	}
}
