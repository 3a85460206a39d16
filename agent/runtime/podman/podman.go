// Package podman runs the etcd member as a container through the Podman API
// socket (rootless in production: the agent user's podman.socket), using the
// Podman v5 bindings.
//
// The container runs with host networking, the command etcd + Spec.Flags(),
// the data and certificate directories bind-mounted at the same paths with
// SELinux relabeling (:Z), keep-id user namespace when Podman is rootless (so
// etcd's files stay owned by the agent's user), and bounded rlimits. Labels
// mark it as managed by etcd-agent and carry the spec hash, which is how an
// agent restart adopts a running container instead of restarting etcd. The
// container has no restart policy: Supervise restarts it with backoff.
package podman

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/runtime"
)

// Labels set on every container the agent creates.
const (
	LabelManaged  = "io.etcd-agent.managed"
	LabelSpecHash = "io.etcd-agent.spec-hash"
	LabelMember   = "io.etcd-agent.member"
)

// Defaults for Options.
const (
	DefaultContainerPrefix = "etcd-agent-"
	DefaultStopTimeout     = 30 * time.Second
	DefaultPullTimeout     = 5 * time.Minute
	DefaultNofile          = 65536
	DefaultNproc           = 32768
	// EtcdBinary is the etcd path inside the image (as in the official image).
	EtcdBinary = "/usr/local/bin/etcd"
)

// apiTimeout bounds one ordinary API call (inspect, create, start, ...).
const apiTimeout = 30 * time.Second

// Options configure the Podman runtime.
type Options struct {
	// Socket is the Podman API URI, e.g. unix:///run/user/1000/podman/podman.sock.
	// Required: the runtime reads no environment.
	Socket string
	// Image is the etcd image, e.g. gcr.io/etcd-development/etcd:v3.7.3. Required.
	Image string
	// ContainerName defaults to "etcd-agent-<member name>".
	ContainerName string
	// StopTimeout is the grace period between SIGTERM and SIGKILL (default 30s).
	StopTimeout time.Duration
	// PullTimeout bounds an image pull (default 5m).
	PullTimeout time.Duration
	// Nofile and Nproc are the container's rlimits (soft = hard); defaults
	// 65536 and 32768, lowered to this process's hard limits (a container
	// cannot get more than the Podman service has, and runc refuses to start
	// it otherwise).
	Nofile, Nproc uint64
	Logger        *slog.Logger
}

// Runtime runs one etcd member in a Podman container. Safe for concurrent use.
type Runtime struct {
	opts Options
	log  *slog.Logger

	connMu   sync.Mutex // serializes connecting
	mu       sync.Mutex
	conn     context.Context // bindings connection; nil until connected
	rootless bool
	name     string // container name of the last Ensure
	id       string // container ID of the last Ensure
}

var _ runtime.Runtime = (*Runtime)(nil)

// New checks opts and returns a runtime. It does not connect yet: the socket
// may appear later (at boot), and Ensure reports when it is missing.
func New(opts Options) (*Runtime, error) {
	if opts.Socket == "" {
		return nil, errors.New("new podman runtime: socket: required (e.g. unix:///run/user/1000/podman/podman.sock)")
	}
	if opts.Image == "" {
		return nil, errors.New("new podman runtime: image: required (e.g. gcr.io/etcd-development/etcd:v3.7.3)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.PullTimeout <= 0 {
		opts.PullTimeout = DefaultPullTimeout
	}
	if opts.Nofile == 0 {
		opts.Nofile = clampToHardLimit(syscall.RLIMIT_NOFILE, DefaultNofile)
	}
	if opts.Nproc == 0 {
		opts.Nproc = clampToHardLimit(rlimitNproc, DefaultNproc)
	}
	return &Runtime{opts: opts, log: opts.Logger.With("runtime", "podman")}, nil
}

// Name is "podman".
func (r *Runtime) Name() string { return "podman" }

// Capabilities implements runtime.Runtime: a container outlives the agent
// (adopted on restart) and runs the configured image.
func (r *Runtime) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{RunsImage: true}
}

// containerName is the container name for a member.
func (r *Runtime) containerName(member string) string {
	if r.opts.ContainerName != "" {
		return r.opts.ContainerName
	}
	return DefaultContainerPrefix + member
}

// ContainerID is the ID of the container the last Ensure started or adopted.
func (r *Runtime) ContainerID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.id
}

func clampToHardLimit(resource int, want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(resource, &lim); err != nil {
		return want
	}
	return min(want, lim.Max)
}
