package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Static discovery has no registry to record formation in, so founders ask
// each other on their peer ports: a running etcd answers there even without
// quorum, and a founder without data answers through the agent (below) until
// its own etcd starts. Only peer certificates are accepted either way.

// founderPath is where a founder without data answers on its peer port.
// etcd's peer handler answers 404 there.
const founderPath = "/etcd-agent/v1/founder"

// founderProbeTimeout bounds one question to a founder.
const founderProbeTimeout = 2 * time.Second

// founderAnswer is what a founder without data says about itself.
type founderAnswer struct {
	State string `json:"state"` // "blank"
	Name  string `json:"name"`
}

// answerAsBlankFounder serves founderPath on this node's peer address until
// the returned stop is called (before etcd starts on that port).
func (a *Agent) answerAsBlankFounder(ctx context.Context) (stop func(), err error) {
	serverTLS, _, err := pki.PeerTLS(a.cfg.PKI.Dir)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(a.specBase().PeerURL())
	if err != nil {
		return nil, fmt.Errorf("answer on peer port: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("answer as a founder without data on %s: %w", u.Host, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+founderPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(founderAnswer{State: "blank", Name: a.id.Name})
	})
	srv := &http.Server{Handler: mux, TLSConfig: serverTLS, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: nil}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("founder answer on peer port", "err", err)
		}
	}()
	return sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}), nil
}

// probeFounders asks every other founder what it holds.
func (a *Agent) probeFounders(ctx context.Context, founders []discovery.Member) []membership.Founder {
	_, clientTLS, err := pki.PeerTLS(a.cfg.PKI.Dir)
	if err != nil {
		out := []membership.Founder{}
		for _, f := range founders {
			if f.PeerURL != a.self().PeerURL {
				out = append(out, membership.Founder{Name: f.Name, State: membership.FounderNoAnswer, Detail: err.Error()})
			}
		}
		return out
	}
	hc := &http.Client{Timeout: founderProbeTimeout, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	defer hc.CloseIdleConnections()
	var out []membership.Founder
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, f := range founders {
		if f.PeerURL == a.self().PeerURL {
			continue
		}
		wg.Go(func() {
			fd := a.probeFounder(ctx, hc, f)
			mu.Lock()
			out = append(out, fd)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// probeFounder asks one founder: an agent without data answers "blank"; an
// etcd answers 404 on founderPath, and its client port's status then says
// whether it ever had a leader.
func (a *Agent) probeFounder(ctx context.Context, hc *http.Client, f discovery.Member) membership.Founder {
	fd := membership.Founder{Name: f.Name, State: membership.FounderNoAnswer}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.PeerURL+founderPath, nil)
	if err != nil {
		fd.Detail = err.Error()
		return fd
	}
	resp, err := hc.Do(req)
	if err != nil {
		fd.Detail = err.Error()
		return fd
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var ans founderAnswer
		if json.Unmarshal(body, &ans) == nil && ans.State == "blank" {
			fd.State, fd.Detail = membership.FounderBlank, "no data, no etcd"
		} else {
			fd.Detail = fmt.Sprintf("unexpected answer %.80q", body)
		}
		return fd
	case http.StatusNotFound: // an etcd member
	default:
		fd.Detail = "peer port answered " + resp.Status
		return fd
	}
	clientURL, err := a.clientURLFor(f.PeerURL)
	if err != nil {
		fd.Detail = err.Error()
		return fd
	}
	cli, err := a.newClusterClient([]string{clientURL})
	if err != nil {
		fd.Detail = err.Error()
		return fd
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, founderProbeTimeout)
	defer cancel()
	st, err := cli.Status(sctx, clientURL)
	if err != nil {
		fd.Detail = "etcd runs, status failed: " + shortErr(err)
		return fd
	}
	fd.Detail = fmt.Sprintf("etcd runs, raft term %d, leader %x", st.RaftTerm, st.Leader)
	// etcd bootstraps at raft term 1; the first election moves it on. A
	// member still at term 1 without a leader has accepted no leader's entry.
	if st.RaftTerm <= 1 && st.Leader == 0 {
		fd.State = membership.FounderBootstrapping
	} else {
		fd.State = membership.FounderFormed
	}
	return fd
}
