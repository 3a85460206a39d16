package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
	State string `json:"state"` // "blank" or "ready"
	Name  string `json:"name"`
}

// answerAsFounder serves founderPath on this node's peer address, saying
// state.Load(), until the returned stop is called (before etcd starts on
// that port).
func (j *Job) answerAsFounder(ctx context.Context, state *atomic.Value) (stop func(), err error) {
	serverTLS, _, err := pki.PeerTLS(j.n.Config().PKI.Dir)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(j.self().PeerURL)
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
		_ = json.NewEncoder(w).Encode(founderAnswer{State: state.Load().(string), Name: j.n.Identity().Name})
	})
	// Refused handshakes (non-peer certificates, etcd peers probing for a
	// member that has not started) are expected: not logged.
	srv := &http.Server{Handler: mux, TLSConfig: serverTLS, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			j.n.Logger().Warn("founder answer on peer port", "err", err)
		}
	}()
	return sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}), nil
}

// probeFounders asks every other founder what it holds, in parallel. Without
// a usable peer certificate every founder counts as not answering.
func (j *Job) probeFounders(ctx context.Context, founders []discovery.Member) []Founder {
	_, clientTLS, tlsErr := pki.PeerTLS(j.n.Config().PKI.Dir)
	hc := &http.Client{Timeout: founderProbeTimeout, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	defer hc.CloseIdleConnections()
	selfPeer := j.self().PeerURL
	others := slices.DeleteFunc(slices.Clone(founders), func(f discovery.Member) bool { return f.PeerURL == selfPeer })
	out := make([]Founder, len(others))
	var wg sync.WaitGroup
	for i, f := range others {
		if tlsErr != nil {
			out[i] = Founder{Name: f.Name, State: FounderNoAnswer, Detail: tlsErr.Error()}
			continue
		}
		wg.Go(func() { out[i] = probeFounder(ctx, hc, f, selfPeer) })
	}
	wg.Wait()
	return out
}

// probeFounder asks one founder: an agent without data answers "blank" or
// "ready"; an etcd answers 404 on founderPath and its member list on
// /members (served without quorum), which says whether the member with
// selfPeer ever started.
func probeFounder(ctx context.Context, hc *http.Client, f discovery.Member, selfPeer string) Founder {
	fd := Founder{Name: f.Name, State: FounderNoAnswer}
	code, body, err := get(ctx, hc, f.PeerURL+founderPath)
	switch {
	case err != nil:
		fd.Detail = err.Error()
	case code == http.StatusOK:
		var ans founderAnswer
		_ = json.Unmarshal(body, &ans)
		switch ans.State {
		case "blank":
			fd.State, fd.Detail = FounderBlank, "no data, no etcd"
		case "ready":
			fd.State, fd.Detail = FounderReady, "no data, ready to bootstrap"
		default:
			fd.Detail = fmt.Sprintf("unexpected answer %.80q", body)
		}
	case code == http.StatusNotFound:
		code, body, err = get(ctx, hc, f.PeerURL+"/members")
		var members []peerMember
		if err == nil && code == http.StatusOK && json.Unmarshal(body, &members) == nil {
			fd.State, fd.Self = FounderEtcd, selfIn(members, selfPeer)
			fd.Detail = fmt.Sprintf("etcd runs there (%d members; this node's member: %s)", len(members), fd.Self)
		} else {
			fd.Detail = fmt.Sprintf("peer port: %d %v", code, err)
		}
	default:
		fd.Detail = fmt.Sprintf("peer port answered %d", code)
	}
	return fd
}

// peerMember is a member as etcd's peer /members lists it.
type peerMember struct {
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

// selfIn says what members list about the member with peer URL selfPeer: a
// member that started published its client URLs (its name is no sign: etcd
// names the members of --initial-cluster before they ever start).
func selfIn(members []peerMember, selfPeer string) SelfInList {
	for _, m := range members {
		if slices.Contains(m.PeerURLs, selfPeer) {
			if len(m.ClientURLs) > 0 {
				return SelfStarted
			}
			return SelfUnstarted
		}
	}
	return SelfAbsent
}

func get(ctx context.Context, hc *http.Client, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}
