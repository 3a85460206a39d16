// Package embedded runs etcd inside the agent process through
// go.etcd.io/etcd/server/v3/embed, configured by etcdconf.Spec.EmbedConfig. It
// is the runtime of local mode and of tests.
//
// Adoption, for an in-process runtime, means only that Ensure on an instance
// already running with the same spec hash is a no-op. A restart of the agent
// process necessarily restarts embedded etcd; the data dir keeps the member's
// identity and data across it.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/internal/zapslog"
)

// DefaultStopTimeout bounds a graceful stop.
const DefaultStopTimeout = 30 * time.Second

// Options configure the embedded runtime.
type Options struct {
	Logger *slog.Logger
	// StopTimeout bounds a graceful stop (default 30s); then etcd is stopped hard.
	StopTimeout time.Duration
}

// Runtime runs one embedded etcd member. Safe for concurrent use.
type Runtime struct {
	log         *slog.Logger
	stopTimeout time.Duration

	mu  sync.Mutex
	cur *instance // nil when none was started
	// abandoned is closed once a start given up on (its context ended
	// while embed.StartEtcd ran: up to its 5 s wait for a quorum) has
	// returned and its etcd is closed. Until then that etcd holds the data
	// dir and the ports with no instance to stop: Stop and Ensure wait.
	abandoned <-chan struct{}
}

var _ runtime.Runtime = (*Runtime)(nil)

// instance is one started embed.Etcd and its exit.
type instance struct {
	etcd *embed.Etcd
	hash string
	done chan struct{} // closed when etcd has stopped; exit is set then
	exit runtime.ExitInfo
	// crash reports etcd's panics (see crashHook).
	crash *crashHook
	// streams ends the gRPC streams once etcd stopped (see streamEnder).
	streams *streamEnder
}

// New returns an embedded runtime; nothing runs until Ensure.
func New(opts Options) *Runtime {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	return &Runtime{log: opts.Logger, stopTimeout: opts.StopTimeout}
}

// Name is "embedded".
func (r *Runtime) Name() string { return "embedded" }

// Capabilities implements runtime.Runtime: etcd stops with the agent's
// process.
func (r *Runtime) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{InProcess: true}
}

// Remove implements runtime.Runtime: an embedded member leaves nothing
// behind but its data, so it is Stop.
func (r *Runtime) Remove(ctx context.Context) error { return r.Stop(ctx) }

// Prepare implements runtime.Runtime: there is nothing to connect to.
func (r *Runtime) Prepare(context.Context) error { return nil }

// Ensure starts etcd in-process, keeps an instance running with the same spec
// hash, or replaces one with a different hash.
func (r *Runtime) Ensure(ctx context.Context, spec etcdconf.Spec) (runtime.Action, error) {
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("ensure embedded etcd: %w", err)
	}
	hash := spec.Hash("embedded")
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.waitAbandonedLocked(ctx); err != nil {
		return "", fmt.Errorf("ensure embedded etcd: %w", err)
	}

	action := runtime.ActionStarted
	if cur := r.cur; cur != nil && !cur.stopped() {
		if cur.hash == hash {
			return runtime.ActionAdopted, nil
		}
		r.log.Info("embedded etcd spec changed: replacing", "member", spec.Name)
		if err := r.stopLocked(ctx, cur); err != nil {
			return "", fmt.Errorf("replace embedded etcd: %w", err)
		}
		action = runtime.ActionReplaced
	}
	if err := runtime.CheckDataDir(spec.DataDir); err != nil {
		return "", fmt.Errorf("start embedded etcd: %w", err)
	}
	if err := runtime.CheckPorts(spec); err != nil {
		return "", fmt.Errorf("start embedded etcd: %w", err)
	}
	cfg, err := spec.EmbedConfig(r.log)
	if err != nil {
		return "", fmt.Errorf("start embedded etcd: %w", err)
	}
	crash := newCrashHook(r.log)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(r.log).WithOptions(zap.WithPanicHook(crash)))
	streams := newStreamEnder()
	cfg.GRPCAdditionalServerOptions = append(cfg.GRPCAdditionalServerOptions, crash.serverOptions()...)
	cfg.GRPCAdditionalServerOptions = append(cfg.GRPCAdditionalServerOptions, streams.serverOption())
	inst, abandoned, err := start(ctx, cfg, hash, crash, streams)
	if err != nil {
		r.abandoned = abandoned
		return "", err
	}
	r.cur = inst
	r.log.Info("embedded etcd started", "member", spec.Name, "action", string(action), "client_url", spec.ClientURL())
	return action, nil
}

// start runs embed.StartEtcd, bounded by ctx, and watches for the exit.
// When ctx ends first, abandoned is closed once the start returned and what
// it brought up is closed.
func start(ctx context.Context, cfg *embed.Config, hash string, crash *crashHook, streams *streamEnder) (inst *instance, abandoned <-chan struct{}, err error) {
	type result struct {
		e   *embed.Etcd
		err error
	}
	ch := make(chan result, 1)
	go func() {
		e, err := embed.StartEtcd(cfg)
		ch <- result{e, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		// StartEtcd has no context; close whatever it brings up.
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			if r := <-ch; r.e != nil {
				// The server first: Close waits for the client listeners,
				// which a member without a quorum only leaves once its
				// server stops (it never becomes ready).
				r.e.Server.HardStop()
				streams.end()
				r.e.Close()
			}
		}()
		return nil, closed, fmt.Errorf("start embedded etcd: %w", ctx.Err())
	}
	if res.err != nil {
		return nil, nil, fmt.Errorf("start embedded etcd: %w", res.err)
	}
	inst = &instance{etcd: res.e, hash: hash, done: make(chan struct{}), crash: crash, streams: streams}
	go inst.watch()
	return inst, nil, nil
}

// waitAbandonedLocked waits until an abandoned start's etcd is closed.
func (r *Runtime) waitAbandonedLocked(ctx context.Context) error {
	if r.abandoned == nil {
		return nil
	}
	select {
	case <-r.abandoned:
		r.abandoned = nil
		return nil
	case <-ctx.Done():
		return fmt.Errorf("an abandoned start of etcd is still closing: %w", ctx.Err())
	}
}

// watch records why etcd stopped and releases its listeners.
func (in *instance) watch() {
	var err error
	select {
	case <-in.etcd.Server.StopNotify():
		err = errors.New("etcd server stopped")
	case err = <-in.etcd.Err():
		if err == nil {
			err = errors.New("etcd listener closed")
		}
	case msg := <-in.crash.fatal:
		err = fmt.Errorf("etcd panicked: %s", msg)
		in.etcd.Server.HardStop()
	}
	// The server has stopped (or Close stops it): its streams can only
	// wait out Close's graceful timeout.
	in.streams.end()
	in.etcd.Close()
	in.exit = runtime.ExitInfo{ExitCode: -1, Err: err, At: time.Now()}
	close(in.done)
}

func (in *instance) stopped() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// Wait returns when the current instance stops or ctx is done.
func (r *Runtime) Wait(ctx context.Context) (runtime.ExitInfo, error) {
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	if cur == nil {
		return runtime.ExitInfo{}, fmt.Errorf("wait for embedded etcd: %w", runtime.ErrNotRunning)
	}
	select {
	case <-cur.done:
		return cur.exit, nil
	case <-ctx.Done():
		return runtime.ExitInfo{}, fmt.Errorf("wait for embedded etcd: %w", ctx.Err())
	}
}

// Running reports whether an instance is running.
func (r *Runtime) Running(context.Context) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur != nil && !r.cur.stopped(), nil
}

// Stop stops etcd gracefully (it transfers leadership first), bounded by the
// stop timeout and ctx, and stops it hard after that.
func (r *Runtime) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.waitAbandonedLocked(ctx); err != nil {
		return fmt.Errorf("stop embedded etcd: %w", err)
	}
	if r.cur == nil || r.cur.stopped() {
		return nil
	}
	return r.stopLocked(ctx, r.cur)
}

func (r *Runtime) stopLocked(ctx context.Context, in *instance) error {
	ctx, cancel := context.WithTimeout(ctx, r.stopTimeout)
	defer cancel()
	go in.etcd.Server.Stop() // graceful: leadership transfer, then stop
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
	}
	r.log.Warn("embedded etcd did not stop in time: stopping hard", "timeout", r.stopTimeout)
	in.etcd.Server.HardStop()
	select {
	case <-in.done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("stop embedded etcd: still running after hard stop")
	}
}

// Kill stops etcd abruptly, without leadership transfer, as a crash would.
// Supervise then sees an exit. It exists for fault tests.
func (r *Runtime) Kill(context.Context) error {
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	if cur == nil || cur.stopped() {
		return fmt.Errorf("kill embedded etcd: %w", runtime.ErrNotRunning)
	}
	cur.etcd.Server.HardStop()
	<-cur.done
	return nil
}
