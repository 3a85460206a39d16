// Package runtime runs the local etcd member and keeps it running. A Runtime
// is one way to run etcd (a Podman container, or etcd embedded in the agent
// process); Supervise restarts it with backoff when it exits and reports crash
// loops. Both runtimes take the member's configuration from an etcdconf.Spec.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
)

// Action is what Ensure did to get the member running.
type Action string

// Actions reported by Ensure.
const (
	// ActionAdopted: an instance with the same spec hash was already running and
	// was kept as is (same container, no restart).
	ActionAdopted Action = "adopted"
	// ActionStarted: no instance was running; one was started.
	ActionStarted Action = "started"
	// ActionReplaced: an instance with a different spec hash was stopped and a
	// new one started.
	ActionReplaced Action = "replaced"
)

// ErrNotRunning is returned by Wait when there is no instance to wait for.
var ErrNotRunning = errors.New("etcd is not running")

// ExitInfo says why the etcd instance stopped.
type ExitInfo struct {
	// ExitCode is the process exit code; -1 when not known (embedded etcd).
	ExitCode int
	// Err is the error etcd or the runtime reported, if any.
	Err error
	// OOMKilled is true when the kernel killed etcd for memory.
	OOMKilled bool
	// At is when the exit was observed.
	At time.Time
}

// String renders the exit reason for logs and status lines.
func (e ExitInfo) String() string {
	s := "exited"
	if e.ExitCode >= 0 {
		s = fmt.Sprintf("exited with code %d", e.ExitCode)
	}
	if e.OOMKilled {
		s += " (out of memory)"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Runtime runs one etcd member.
type Runtime interface {
	// Ensure makes the member run with spec: it adopts a running instance whose
	// spec hash matches (no restart), replaces one with a different hash, and
	// starts one if none runs. It returns once etcd is started, not once it is
	// healthy: readiness is the caller's concern.
	Ensure(ctx context.Context, spec etcdconf.Spec) (Action, error)
	// Wait blocks until the running instance exits or ctx is done, and says
	// why it exited. Without an instance it returns ErrNotRunning.
	Wait(ctx context.Context) (ExitInfo, error)
	// Running reports whether the member's instance is running.
	Running(ctx context.Context) (bool, error)
	// Stop stops the instance gracefully, killing it after the runtime's stop
	// timeout. Stopping a stopped member is not an error.
	Stop(ctx context.Context) error
	// Remove stops the instance and deletes it (a container): the member is
	// gone for good, or its next spec differs anyway (rejoin, recovery,
	// leave). Removing a removed member is not an error.
	Remove(ctx context.Context) error
	// Prepare connects to the runtime before the first Ensure (the Podman
	// socket); it fails while the runtime does not answer.
	Prepare(ctx context.Context) error
	// Capabilities says how this runtime behaves where the agent must
	// choose: the agent never chooses by Name.
	Capabilities() Capabilities
	// Name is "podman" or "embedded", for logs and status.
	Name() string
}

// ImageFetcher is a runtime that runs etcd from an image it may have to
// fetch first (Podman). A founder fetches it before it records its start in
// discovery, so a pull of minutes is no window in which a kill leaves that
// record without a WAL.
type ImageFetcher interface {
	// EnsureImage makes spec's image present, pulling it when missing.
	EnsureImage(ctx context.Context, spec etcdconf.Spec) error
}

// Capabilities are the differences between runtimes that the agent acts on.
type Capabilities struct {
	// InProcess: etcd lives in the agent's process. It stops when the agent
	// stops, and an agent's start always starts it anew with the config's
	// settings: there is no running instance to adopt or roll a change
	// into.
	InProcess bool
	// RunsImage: etcd runs from Spec.Image, so a changed image is a change
	// to roll out like a setting.
	RunsImage bool
}
