package fleetlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

// The FleetLock protocol (coreos/airlock docs/protocol-specs.md): POST
// <base>/v1/pre-reboot and <base>/v1/steady-state, header
// `fleet-lock-protocol: true`, body {"client_params": {"id", "group"}}
// (older clients send node_uuid for id). 200 is success; anything else is a
// refusal with the body {"kind", "value"}, which Zincati logs and retries.
const (
	PreRebootPath   = "/v1/pre-reboot"
	SteadyStatePath = "/v1/steady-state"
	// ProtocolHeader must be "true" on every request.
	ProtocolHeader = "fleet-lock-protocol"
	// maxBody bounds a request body: the protocol's is a few dozen bytes.
	maxBody = 64 << 10
	// DefaultGroup is Zincati's group when none is configured.
	DefaultGroup = "default"
)

// Locker is what the protocol asks: the agent's job.
type Locker interface {
	PreReboot(ctx context.Context, c Client) Decision
	SteadyState(ctx context.Context, c Client) Decision
}

// ErrorBody is a refusal's body.
type ErrorBody struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// request is a FleetLock request body.
type request struct {
	ClientParams *struct {
		ID       string `json:"id"`
		NodeUUID string `json:"node_uuid"`
		Group    string `json:"group"`
	} `json:"client_params"`
}

// Handler serves the protocol for l.
func Handler(l Locker, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	handle := func(path string, op func(context.Context, Client) Decision) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeError(w, http.StatusMethodNotAllowed, KindBadMethod, r.Method+" "+path+": the FleetLock protocol uses POST")
				return
			}
			c, status, kind, why := parse(r)
			if kind != "" {
				log.Warn("FleetLock request refused", "path", path, "kind", kind, "reason", why)
				writeError(w, status, kind, why)
				return
			}
			d := op(r.Context(), c)
			if !d.Grant {
				log.Info("FleetLock "+path+" refused", "id", c.ID, "group", c.Group, "kind", d.Kind, "reason", d.Reason)
				writeError(w, statusOf(d.Kind), d.Kind, d.Reason)
				return
			}
			log.Info("FleetLock "+path+" granted", "id", c.ID, "group", c.Group, "reason", d.Reason)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_ = json.NewEncoder(w).Encode(map[string]string{"value": d.Reason})
		})
	}
	handle(PreRebootPath, l.PreReboot)
	handle(SteadyStatePath, l.SteadyState)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, KindNotFound, r.URL.Path+" is not a FleetLock endpoint (POST "+PreRebootPath+" or "+SteadyStatePath+")")
	})
	return mux
}

// parse checks the header and the body; kind is "" when they are good.
func parse(r *http.Request) (c Client, status int, kind, why string) {
	if v := r.Header.Get(ProtocolHeader); v != "true" {
		return c, http.StatusBadRequest, KindBadHeader, fmt.Sprintf("header %s must be \"true\" (got %q)", ProtocolHeader, v)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return c, http.StatusBadRequest, KindBadBody, "cannot read the body: " + err.Error()
	}
	var req request
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&req); err != nil {
		return c, http.StatusBadRequest, KindBadBody, "the body is not JSON {\"client_params\": {\"id\": ..., \"group\": ...}}: " + err.Error()
	}
	if req.ClientParams == nil {
		return c, http.StatusBadRequest, KindBadBody, "the body has no client_params"
	}
	p := req.ClientParams
	c.ID = p.ID
	if c.ID == "" {
		c.ID = p.NodeUUID // the protocol's older name
	}
	c.Group = p.Group
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	switch {
	case c.ID == "":
		return c, http.StatusBadRequest, KindBadBody, "client_params.id (or node_uuid) is empty"
	case len(c.ID) > 256 || strings.ContainsAny(c.ID, "\x00\n"):
		return c, http.StatusBadRequest, KindBadBody, "client_params.id is not a node ID"
	case !config.FleetLockGroupPattern.MatchString(c.Group) || len(c.Group) > 63:
		return c, http.StatusBadRequest, KindBadBody, fmt.Sprintf("client_params.group %q is not a group name (letters, digits, '.' and '-')", c.Group)
	}
	return c, 0, "", ""
}

// statusOf is the HTTP status of a refusal: 409 for "not now" answers of
// the planner, 503 when the agent cannot tell yet.
func statusOf(kind string) int {
	switch kind {
	case KindEtcdNotReady, KindUnavailable:
		return http.StatusServiceUnavailable
	case KindInternalError:
		return http.StatusInternalServerError
	}
	return http.StatusConflict
}

func writeError(w http.ResponseWriter, status int, kind, value string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Kind: kind, Value: value})
}

// Serve listens on addr and serves h until ctx ends; listening is called
// once it listens. A failed listen is returned (the caller retries with
// backoff).
func Serve(ctx context.Context, addr string, h http.Handler, listening func()) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("FleetLock: listen on %s: %w", addr, err)
	}
	if listening != nil {
		listening()
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("FleetLock on %s: %w", addr, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
