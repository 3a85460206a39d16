package podman

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"

	"github.com/etcd-agent/etcd-agent/agent/runtime"
)

// current is the container of the last Ensure; in a process that has not
// ensured one (etcd-agent leave), the agent's container by its configured
// name. ErrNotRunning when there is none of ours.
func (r *Runtime) current(ctx context.Context) (conn context.Context, name, id string, err error) {
	r.mu.Lock()
	name, id = r.name, r.id
	r.mu.Unlock()
	if id == "" && r.opts.ContainerName == "" {
		return nil, "", "", runtime.ErrNotRunning
	}
	conn, err = r.connect(ctx)
	if err != nil || id != "" {
		return conn, name, id, err
	}
	data, err := r.inspect(ctx, conn, r.opts.ContainerName)
	if err != nil {
		return nil, "", "", err
	}
	if data == nil || data.Config == nil || data.Config.Labels[LabelManaged] != "true" {
		return nil, "", "", runtime.ErrNotRunning // none, or not ours: never touched
	}
	r.remember(r.opts.ContainerName, data.ID)
	return conn, r.opts.ContainerName, data.ID, nil
}

// Wait blocks until the container stops (or ctx is done) and says why.
func (r *Runtime) Wait(ctx context.Context) (runtime.ExitInfo, error) {
	conn, name, id, err := r.current(ctx)
	if err != nil {
		return runtime.ExitInfo{}, fmt.Errorf("wait for etcd container: %w", err)
	}
	code, err := containers.Wait(call(ctx, conn), id,
		new(containers.WaitOptions).WithConditions([]string{"stopped", "exited"}))
	if err != nil {
		if ctx.Err() != nil {
			return runtime.ExitInfo{}, fmt.Errorf("wait for etcd container %s: %w", name, ctx.Err())
		}
		if isNotFound(err) {
			return runtime.ExitInfo{ExitCode: -1, Err: errors.New("container removed"), At: time.Now()}, nil
		}
		return runtime.ExitInfo{}, fmt.Errorf("wait for etcd container %s: %w", name, err)
	}
	exit := runtime.ExitInfo{ExitCode: int(code), At: time.Now()}
	if data, err := r.inspect(ctx, conn, id); err == nil && data != nil && data.State != nil {
		exit.OOMKilled = data.State.OOMKilled
		if data.State.Error != "" {
			exit.Err = errors.New(data.State.Error)
		}
	}
	return exit, nil
}

// Running reports whether the member's container (by name) is running and
// managed by etcd-agent.
func (r *Runtime) Running(ctx context.Context) (bool, error) {
	r.mu.Lock()
	name := r.name
	r.mu.Unlock()
	if name == "" {
		return false, nil
	}
	conn, err := r.connect(ctx)
	if err != nil {
		return false, err
	}
	data, err := r.inspect(ctx, conn, name)
	if err != nil || data == nil {
		return false, err
	}
	managed := data.Config != nil && data.Config.Labels[LabelManaged] == "true"
	return managed && data.State != nil && data.State.Running, nil
}

// Stop stops the container: SIGTERM, then SIGKILL after the stop timeout. The
// container is kept (a later Ensure adopts or recreates it).
func (r *Runtime) Stop(ctx context.Context) error {
	conn, name, id, err := r.current(ctx)
	if errors.Is(err, runtime.ErrNotRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop etcd container: %w", err)
	}
	if err := r.stop(ctx, conn, id); err != nil {
		return fmt.Errorf("stop etcd container %s: %w", name, err)
	}
	return nil
}

// Remove stops and deletes the container (the member left the cluster).
func (r *Runtime) Remove(ctx context.Context) error {
	conn, name, id, err := r.current(ctx)
	if errors.Is(err, runtime.ErrNotRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove etcd container: %w", err)
	}
	if err := r.stop(ctx, conn, id); err != nil {
		return fmt.Errorf("stop etcd container %s: %w", name, err)
	}
	if err := r.remove(ctx, conn, id); err != nil {
		return err
	}
	r.remember("", "")
	return nil
}

func (r *Runtime) stop(ctx, conn context.Context, id string) error {
	secs := uint(r.opts.StopTimeout.Seconds())
	cctx, cancel := callTimeout(ctx, conn, r.opts.StopTimeout+apiTimeout)
	defer cancel()
	err := containers.Stop(cctx, id, new(containers.StopOptions).WithTimeout(secs).WithIgnore(true))
	if err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// Kill sends SIGKILL to the container, as a crash would. For fault tests and
// for a stop that must not wait.
func (r *Runtime) Kill(ctx context.Context) error {
	conn, name, id, err := r.current(ctx)
	if err != nil {
		return fmt.Errorf("kill etcd container: %w", err)
	}
	cctx, cancel := callTimeout(ctx, conn, apiTimeout)
	defer cancel()
	if err := containers.Kill(cctx, id, new(containers.KillOptions).WithSignal("KILL")); err != nil {
		return fmt.Errorf("kill etcd container %s: %w", name, err)
	}
	return nil
}

// rlimitHint explains runc's rlimit refusal.
func rlimitHint(err error) string {
	if strings.Contains(err.Error(), "error setting rlimit") {
		return " (the container's rlimits exceed the Podman service's hard limits: lower podman nofile/nproc)"
	}
	return ""
}
