package podman

import (
	"context"
	"errors"
	"fmt"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
)

// Ensure makes the member's container run with spec. A running container with
// the member's name and the same spec hash is adopted (same container, no
// restart); one with a different hash is stopped, removed and recreated; a
// stopped one is removed and recreated. A container with the name that
// etcd-agent does not manage is never touched: Ensure fails.
func (r *Runtime) Ensure(ctx context.Context, s etcdconf.Spec) (runtime.Action, error) {
	if err := s.Validate(); err != nil {
		return "", fmt.Errorf("ensure etcd container: %w", err)
	}
	conn, err := r.connect(ctx)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	rootless := r.rootless
	r.mu.Unlock()
	name := r.containerName(s.Name)
	hash := r.specHash(s, rootless)

	cur, err := r.inspect(ctx, conn, name)
	if err != nil {
		return "", err
	}
	action := runtime.ActionStarted
	if cur != nil {
		if cur.Config == nil || cur.Config.Labels[LabelManaged] != "true" {
			return "", fmt.Errorf("container %s exists and is not managed by etcd-agent; remove it or set podman.containerName", name)
		}
		running := cur.State != nil && cur.State.Running
		if running && cur.Config.Labels[LabelSpecHash] == hash {
			r.remember(name, cur.ID)
			r.log.Info("adopted running etcd container", "container", name, "id", shortID(cur.ID))
			return runtime.ActionAdopted, nil
		}
		if running {
			r.log.Info("etcd spec changed: replacing container", "container", name, "id", shortID(cur.ID))
			if err := r.stop(ctx, conn, cur.ID); err != nil {
				return "", fmt.Errorf("replace etcd container %s: %w", name, err)
			}
			action = runtime.ActionReplaced
		}
		if err := r.remove(ctx, conn, cur.ID); err != nil {
			return "", err
		}
	}

	if err := runtime.CheckDataDir(s.DataDir); err != nil {
		return "", fmt.Errorf("start etcd container %s: %w", name, err)
	}
	if err := runtime.CheckPorts(s); err != nil {
		return "", fmt.Errorf("start etcd container %s: %w", name, err)
	}
	if err := r.ensureImage(ctx, conn, r.image(s)); err != nil {
		return "", err
	}
	id, err := r.create(ctx, conn, r.containerSpec(s, name, hash, rootless))
	if err != nil {
		return "", err
	}
	cctx, cancel := callTimeout(ctx, conn, apiTimeout)
	err = containers.Start(cctx, id, nil)
	cancel()
	if err != nil {
		// Leave nothing half-made behind; the next Ensure creates it afresh.
		if rerr := r.remove(ctx, conn, id); rerr != nil {
			r.log.Warn("could not remove the container that failed to start", "container", name, "err", rerr)
		}
		return "", fmt.Errorf("start etcd container %s: %w%s", name, err, rlimitHint(err))
	}
	r.remember(name, id)
	r.log.Info("etcd container started", "container", name, "id", shortID(id), "action", string(action), "image", r.image(s))
	return action, nil
}

func (r *Runtime) remember(name, id string) {
	r.mu.Lock()
	r.name, r.id = name, id
	r.mu.Unlock()
}

// inspect returns the container nameOrID, or nil when there is none.
func (r *Runtime) inspect(ctx, conn context.Context, nameOrID string) (*define.InspectContainerData, error) {
	cctx, cancel := callTimeout(ctx, conn, apiTimeout)
	defer cancel()
	ok, err := containers.Exists(cctx, nameOrID, nil)
	if err != nil {
		return nil, fmt.Errorf("look up container %s: %w", nameOrID, err)
	}
	if !ok {
		return nil, nil
	}
	data, err := containers.Inspect(cctx, nameOrID, nil)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("inspect container %s: %w", nameOrID, err)
	}
	return data, nil
}

func (r *Runtime) create(ctx, conn context.Context, sg *specgen.SpecGenerator) (string, error) {
	cctx, cancel := callTimeout(ctx, conn, apiTimeout)
	defer cancel()
	resp, err := containers.CreateWithSpec(cctx, sg, nil)
	if err != nil {
		return "", fmt.Errorf("create etcd container %s: %w", sg.Name, err)
	}
	for _, w := range resp.Warnings {
		r.log.Warn("podman warning creating etcd container", "container", sg.Name, "warning", w)
	}
	return resp.ID, nil
}

// remove deletes a stopped container of ours.
func (r *Runtime) remove(ctx, conn context.Context, id string) error {
	cctx, cancel := callTimeout(ctx, conn, r.opts.StopTimeout+apiTimeout)
	defer cancel()
	_, err := containers.Remove(cctx, id, new(containers.RemoveOptions).WithForce(true).WithIgnore(true))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("remove etcd container %s: %w", shortID(id), err)
	}
	return nil
}

func isNotFound(err error) bool {
	var em interface{ Code() int }
	if errors.As(err, &em) && em.Code() == 404 {
		return true
	}
	return errors.Is(err, define.ErrNoSuchCtr)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
