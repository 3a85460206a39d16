// Package agentapi is what one agent asks another directly, over TLS with
// peer certificates only, on the other node's address (agent.apiPort): the
// answers that must come even when etcd cannot give them. A member that
// restarts without a quorum never serves its client port, so before a
// recovery only its agent can say how far its WAL reaches.
package agentapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
)

// walPath answers how far this node's member's WAL reaches.
const walPath = "/etcd-agent/v1/wal"

// askTimeout bounds one question to another agent.
const askTimeout = 3 * time.Second

// WALAnswer is what an agent says of its member's WAL.
type WALAnswer struct {
	Name string `json:"name"`
	// HasMember is false when the node holds no member data.
	HasMember bool `json:"has_member"`
	datadir.Tail
}

// Server answers the other agents for one node.
type Server struct {
	Name    string // the node's member name
	DataDir string
	TLS     *tls.Config // the peer server config (pki.PeerTLS)
	Log     *slog.Logger
}

// Serve listens on addr and answers until ctx ends. A failed listen is
// returned (the caller retries: the address may appear later).
func (s Server) Serve(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("agent API: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+walPath, s.wal)
	srv := &http.Server{Handler: mux, TLSConfig: s.TLS, ReadHeaderTimeout: 5 * time.Second,
		// Refused handshakes (a client without a peer certificate) are the
		// callers' problem: not logged here.
		ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("agent API on %s: %w", addr, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		return nil
	}
}

func (s Server) wal(w http.ResponseWriter, _ *http.Request) {
	ans := WALAnswer{Name: s.Name}
	if has, err := datadir.HasMember(s.DataDir); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	} else if has {
		tail, err := datadir.ReadTail(s.DataDir)
		if err != nil {
			s.Log.Warn("agent API: read the WAL's tail", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ans.HasMember, ans.Tail = true, tail
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// URLFor is the agent API of the node whose etcd peer URL is peerURL: the
// same host, port.
func URLFor(peerURL string, port int) (string, error) {
	u, err := url.Parse(peerURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("agent API address from peer URL %q: not a URL with a host", peerURL)
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(port)), nil
}

// AskWAL asks the agent at base (URLFor) how far its member's WAL reaches.
func AskWAL(ctx context.Context, clientTLS *tls.Config, base string) (WALAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+walPath, nil)
	if err != nil {
		return WALAnswer{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return WALAnswer{}, fmt.Errorf("ask the agent at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return WALAnswer{}, fmt.Errorf("ask the agent at %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return WALAnswer{}, fmt.Errorf("the agent at %s answered %s: %.200s", base, resp.Status, body)
	}
	var ans WALAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return WALAnswer{}, fmt.Errorf("the agent at %s answered %.80q: %w", base, body, err)
	}
	if ans.Name == "" {
		return WALAnswer{}, errors.New("the agent at " + base + " answered without a name")
	}
	return ans, nil
}
