package fleetlock

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeLocker grants pre-reboot to "granted" and refuses everyone else.
type fakeLocker struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeLocker) record(op string, c Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+c.ID+" "+c.Group)
}

func (f *fakeLocker) PreReboot(_ context.Context, c Client) Decision {
	f.record("pre-reboot", c)
	if c.ID == "granted" {
		return Decision{Grant: true, Reason: "ok"}
	}
	return refuse(KindSlotTaken, "group %q has 1 slot(s), held by other", c.Group)
}

func (f *fakeLocker) SteadyState(_ context.Context, c Client) Decision {
	f.record("steady-state", c)
	if c.ID == "unavailable" {
		return refuse(KindUnavailable, "no quorum")
	}
	return Decision{Grant: true, Reason: "released"}
}

// TestProtocol drives the handler over real HTTP as Zincati does, and
// checks every bad request's documented shape: a non-200 with a JSON body
// {"kind", "value"}.
func TestProtocol(t *testing.T) {
	l := &fakeLocker{}
	srv := httptest.NewServer(Handler(l, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	const good = `{"client_params": {"id": "granted", "group": "default"}}`
	for _, tc := range []struct {
		name, method, path, header, body string
		status                           int
		kind                             string // "" for success
		call                             string // what the locker was asked ("" none)
	}{
		{name: "pre-reboot granted", method: "POST", path: PreRebootPath, header: "true", body: good, status: 200, call: "pre-reboot granted default"},
		{name: "pre-reboot refused", method: "POST", path: PreRebootPath, header: "true", body: `{"client_params": {"id": "z2", "group": "workers"}}`,
			status: 409, kind: KindSlotTaken, call: "pre-reboot z2 workers"},
		{name: "older node_uuid accepted", method: "POST", path: PreRebootPath, header: "true", body: `{"client_params": {"node_uuid": "granted", "group": "default"}}`,
			status: 200, call: "pre-reboot granted default"},
		{name: "missing group is the default group", method: "POST", path: SteadyStatePath, header: "true", body: `{"client_params": {"id": "z3"}}`,
			status: 200, call: "steady-state z3 default"},
		{name: "steady-state cannot tell yet", method: "POST", path: SteadyStatePath, header: "true", body: `{"client_params": {"id": "unavailable", "group": "default"}}`,
			status: 503, kind: KindUnavailable, call: "steady-state unavailable default"},
		{name: "no protocol header", method: "POST", path: PreRebootPath, body: good, status: 400, kind: KindBadHeader},
		{name: "protocol header not true", method: "POST", path: PreRebootPath, header: "yes", body: good, status: 400, kind: KindBadHeader},
		{name: "GET", method: "GET", path: PreRebootPath, header: "true", status: 405, kind: KindBadMethod},
		{name: "unknown path", method: "POST", path: "/v1/reboot", header: "true", body: good, status: 404, kind: KindNotFound},
		{name: "not JSON", method: "POST", path: PreRebootPath, header: "true", body: "id=z1", status: 400, kind: KindBadBody},
		{name: "empty body", method: "POST", path: PreRebootPath, header: "true", status: 400, kind: KindBadBody},
		{name: "no client_params", method: "POST", path: PreRebootPath, header: "true", body: `{"id": "z1"}`, status: 400, kind: KindBadBody},
		{name: "empty id", method: "POST", path: PreRebootPath, header: "true", body: `{"client_params": {"id": "", "group": "default"}}`, status: 400, kind: KindBadBody},
		{name: "group that cannot be a key", method: "POST", path: PreRebootPath, header: "true", body: `{"client_params": {"id": "z1", "group": "../x"}}`, status: 400, kind: KindBadBody},
		{name: "body too large", method: "POST", path: PreRebootPath, header: "true", body: `{"client_params": {"id": "` + strings.Repeat("x", maxBody) + `"}}`, status: 400, kind: KindBadBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.mu.Lock()
			l.calls = nil
			l.mu.Unlock()
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set(ProtocolHeader, tc.header)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if tc.kind != "" {
				var e ErrorBody
				if err := json.Unmarshal(body, &e); err != nil || e.Kind != tc.kind || e.Value == "" {
					t.Errorf("body %s (%v), want {\"kind\": %q, \"value\": <why>}", body, err, tc.kind)
				}
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case tc.call == "" && len(l.calls) > 0:
				t.Errorf("a bad request reached the locker: %v", l.calls)
			case tc.call != "" && (len(l.calls) != 1 || l.calls[0] != tc.call):
				t.Errorf("locker calls %v, want [%s]", l.calls, tc.call)
			}
		})
	}
}

// TestServeListens: Serve answers on its address and stops with ctx; a
// busy address is an error to retry.
func TestServeListens(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan struct{})
	done := make(chan error, 1)
	l := &fakeLocker{}
	go func() {
		done <- Serve(ctx, "127.0.0.1:0", Handler(l, slog.New(slog.DiscardHandler)), func() { close(listening) })
	}()
	<-listening
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	busy := httptest.NewServer(http.NotFoundHandler())
	defer busy.Close()
	addr := strings.TrimPrefix(busy.URL, "http://")
	if err := Serve(context.Background(), addr, Handler(l, slog.New(slog.DiscardHandler)), nil); err == nil || !strings.Contains(err.Error(), "listen on "+addr) {
		t.Errorf("Serve on a busy address: %v, want a listen error naming it", err)
	}
}
