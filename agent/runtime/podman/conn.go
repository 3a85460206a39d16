package podman

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/system"
)

// connect returns the bindings connection, dialing and pinging the socket the
// first time. The bindings keep the connection in a context; call derives
// per-call contexts from it.
func (r *Runtime) connect(ctx context.Context) (context.Context, error) {
	r.connMu.Lock() // one dial at a time: Prepare may race the first Ensure
	defer r.connMu.Unlock()
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	if conn != nil {
		return conn, nil
	}
	if err := checkSocket(r.opts.Socket); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	c, err := bindings.NewConnection(withValues{Context: cctx, values: context.Background()}, r.opts.Socket)
	if err != nil {
		return nil, fmt.Errorf("connect podman socket %s: %w: is the Podman service running?", r.opts.Socket, err)
	}
	// Keep the connection's values but not cctx's deadline.
	conn = withValues{Context: context.Background(), values: c}
	info, err := system.Info(call(cctx, conn), nil)
	if err != nil {
		return nil, fmt.Errorf("query podman info on %s: %w", r.opts.Socket, err)
	}
	r.mu.Lock()
	r.conn, r.rootless = conn, info.Host.Security.Rootless
	r.mu.Unlock()
	r.log.Info("connected to podman", "socket", r.opts.Socket, "version", info.Version.Version, "rootless", info.Host.Security.Rootless)
	return conn, nil
}

// Prepare connects to the Podman service ahead of the first Ensure (its
// info query takes a good part of a second), so the agent can do it while it
// waits in discovery. A failure here is reported again by Ensure.
func (r *Runtime) Prepare(ctx context.Context) error {
	_, err := r.connect(ctx)
	return err
}

// checkSocket reports a missing unix socket with the command that enables it.
func checkSocket(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("parse podman socket %q: %w", uri, err)
	}
	if u.Scheme != "unix" {
		return nil
	}
	path := u.Path
	if u.Host != "" {
		path = "/" + u.Host + u.Path
	}
	st, err := os.Stat(path)
	hint := "systemctl --user enable --now podman.socket"
	if !strings.HasPrefix(path, "/run/user/") {
		hint = "systemctl enable --now podman.socket"
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("podman socket %s not found: enable it with `%s`", path, hint)
	case err != nil:
		return fmt.Errorf("podman socket %s: %w", path, err)
	case st.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("podman socket %s is not a socket", path)
	}
	return nil
}

// withValues is ctx's deadline and cancellation with values looked up in ctx
// first, then in values (the bindings connection).
type withValues struct {
	context.Context
	values context.Context
}

func (w withValues) Value(key any) any {
	if v := w.Context.Value(key); v != nil {
		return v
	}
	return w.values.Value(key)
}

// call returns a context for one API call: ctx's deadline and cancellation,
// the connection's values.
func call(ctx, conn context.Context) context.Context {
	return withValues{Context: ctx, values: conn}
}

// callTimeout is call with an added deadline.
func callTimeout(ctx, conn context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(ctx, d)
	return call(c, conn), cancel
}
