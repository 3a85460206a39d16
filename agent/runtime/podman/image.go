package podman

import (
	"context"
	"fmt"

	"github.com/containers/podman/v5/pkg/bindings/images"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
)

// ensureImage makes the image img present locally, pulling it when missing.
func (r *Runtime) ensureImage(ctx, conn context.Context, img string) error {
	cctx, cancel := callTimeout(ctx, conn, apiTimeout)
	ok, err := images.Exists(cctx, img, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("check image %s: %w", img, err)
	}
	if ok {
		return nil
	}
	r.log.Info("pulling etcd image", "image", img, "timeout", r.opts.PullTimeout)
	pctx, cancel := callTimeout(ctx, conn, r.opts.PullTimeout)
	defer cancel()
	if _, err := images.Pull(pctx, img, new(images.PullOptions).WithQuiet(true)); err != nil {
		return fmt.Errorf("image %s not present and pull failed: %w; build it with `make image` or set etcd.image", img, err)
	}
	return nil
}

// EnsureImage implements runtime.ImageFetcher: the image spec runs is made
// present (pulled when missing) without starting anything.
func (r *Runtime) EnsureImage(ctx context.Context, s etcdconf.Spec) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	return r.ensureImage(ctx, conn, r.image(s))
}
