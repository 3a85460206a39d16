package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestStaticFoundersAgree runs three founders' formation fences (static
// discovery) on real TLS listeners on their peer ports, started, killed and
// restarted in a seeded random order (ETCD_AGENT_TEST_SEED replays one). A
// founder that decides to bootstrap runs a stand-in for etcd on its peer
// port (404 on the founder path, its member list on /members, as etcd's peer
// handler answers: every founder named, client URLs only for those that
// started). Every founder must decide to bootstrap: a founder that
// decides to join while the others have not formed a quorum waits forever
// (its founders' cluster cannot elect a leader), and so do they.
func TestStaticFoundersAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("real listeners, a minute of random starts and kills")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ETCD_AGENT_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ETCD_AGENT_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (ETCD_AGENT_TEST_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	block := testnet.Take(t)
	for round := 1; round <= 3; round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			f := newFounders(t, block, round)
			f.chaos(rng, 20*time.Second)
			f.settle(90 * time.Second)
		})
	}
}

// founders is three founding members' fences on one machine.
type founders struct {
	t     *testing.T
	nodes []*fakeNode
	res   discovery.Result
	start time.Time

	mu      sync.Mutex
	running []*founderRun // nil: down
	verdict []FenceKind   // "" until decided
	etcd    []*http.Server
	events  []string
}

type founderRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newFounders(t *testing.T, block testnet.Block, round int) *founders {
	dir := t.TempDir()
	now := time.Now()
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{CommonName: "founders test CA"}, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caCert, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	f := &founders{t: t, start: now, res: discovery.Result{Self: true, Token: fmt.Sprintf("founders-test-%d", round)},
		running: make([]*founderRun, 3), verdict: make([]FenceKind, 3), etcd: make([]*http.Server, 3)}
	for i := range 3 {
		ip := block.IP(10 + i + 1)
		certDir := filepath.Join(dir, fmt.Sprintf("pki-%d", i))
		if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: certDir, NodeIP: netip.MustParseAddr(ip),
			Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: now}); err != nil {
			t.Fatal(err)
		}
		n := newFakeNode(t, certDir, ip, 3)
		f.nodes = append(f.nodes, n)
		f.res.Members = append(f.res.Members, discovery.Member{Name: n.id.Name, PeerURL: NewJob(n, Options{}).self().PeerURL})
	}
	t.Cleanup(f.stopAll)
	return f
}

func (f *founders) logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf("%5.1fs ", time.Since(f.start).Seconds())+fmt.Sprintf(format, args...))
}

// up starts founder i's agent (its fence) unless it runs or decided.
func (f *founders) up(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running[i] != nil || f.verdict[i] != "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &founderRun{cancel: cancel, done: make(chan struct{})}
	f.running[i] = r
	f.events = append(f.events, fmt.Sprintf("%5.1fs start %d", time.Since(f.start).Seconds(), i+1))
	go func() {
		defer close(r.done)
		v, err := NewJob(f.nodes[i], Options{}).founderVerdict(ctx, f.res)
		if err != nil {
			return // killed
		}
		f.decided(i, v)
	}()
}

// down kills founder i's agent (undecided only: a decided one runs etcd).
func (f *founders) down(i int) {
	f.mu.Lock()
	if f.verdict[i] != "" {
		f.mu.Unlock()
		return
	}
	r := f.running[i]
	f.running[i] = nil
	f.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
	f.logf("kill %d", i+1)
}

func (f *founders) decided(i int, v FenceVerdict) {
	f.mu.Lock()
	if f.running[i] == nil || f.verdict[i] != "" {
		f.mu.Unlock()
		return
	}
	f.verdict[i] = v.Kind
	f.events = append(f.events, fmt.Sprintf("%5.1fs %d decides %s: %s", time.Since(f.start).Seconds(), i+1, v.Kind, v.Reason))
	f.mu.Unlock()
	if v.Kind == FenceBootstrap {
		// Its etcd takes the peer port: the fence's answer stopped when
		// founderVerdict returned.
		f.serveEtcd(i)
	}
}

func (f *founders) runOf(i int) *founderRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[i]
}

// serveEtcd answers on founder i's peer port as etcd's peer handler does:
// 404 on the founder path, the member list on /members (every founder
// named, client URLs only for those that started).
func (f *founders) serveEtcd(i int) {
	serverTLS, _, err := pki.PeerTLS(f.nodes[i].cfg.PKI.Dir)
	if err != nil {
		f.t.Error(err)
		return
	}
	u, _ := url.Parse(f.res.Members[i].PeerURL)
	var ln net.Listener
	for range 50 { // the fence's listener is closing
		if ln, err = net.Listen("tcp", u.Host); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		f.t.Errorf("founder %d: etcd's peer port: %v", i+1, err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, _ *http.Request) {
		type member struct {
			ID         uint64   `json:"id"`
			Name       string   `json:"name"`
			PeerURLs   []string `json:"peerURLs"`
			ClientURLs []string `json:"clientURLs"`
		}
		f.mu.Lock()
		var ms []member
		for k, m := range f.res.Members {
			// etcd names the members of --initial-cluster from the start.
			mm := member{ID: uint64(k + 1), Name: m.Name, PeerURLs: []string{m.PeerURL}}
			if f.verdict[k] == FenceBootstrap {
				mm.ClientURLs = []string{strings.Replace(m.PeerURL, ":2380", ":2379", 1)}
			}
			ms = append(ms, mm)
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(ms)
	})
	srv := &http.Server{Handler: mux, TLSConfig: serverTLS, ReadHeaderTimeout: 5 * time.Second}
	f.mu.Lock()
	f.etcd[i] = srv
	f.mu.Unlock()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.t.Errorf("founder %d etcd stand-in: %v", i+1, err)
		}
	}()
}

// chaos starts founder 1, then for d starts, kills and restarts founders
// at random (a killed one stays down up to 12 s).
func (f *founders) chaos(rng *rand.Rand, d time.Duration) {
	f.up(0)
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond)
		i := rng.IntN(3)
		if f.runOf(i) == nil {
			f.up(i)
			continue
		}
		if rng.IntN(3) == 0 {
			continue
		}
		f.down(i)
		back := time.Duration(rng.IntN(12000)) * time.Millisecond
		time.AfterFunc(back, func() {
			if time.Now().Before(end) {
				f.up(i)
			}
		})
	}
}

// settle starts every founder still down and waits for every verdict:
// all three must bootstrap (one cluster, its founders all voters).
func (f *founders) settle(limit time.Duration) {
	time.Sleep(100 * time.Millisecond)
	for i := range 3 {
		f.up(i)
	}
	deadline := time.Now().Add(limit)
	for {
		f.mu.Lock()
		verdicts := fmt.Sprint(f.verdict)
		done, joined := 0, false
		for _, v := range f.verdict {
			if v != "" {
				done++
			}
			joined = joined || v == FenceJoin
		}
		events := strings.Join(f.events, "\n")
		f.mu.Unlock()
		switch {
		case joined:
			f.t.Fatalf("a founder decided to join a cluster its founders had not formed: verdicts %s\n%s", verdicts, events)
		case done == 3:
			f.t.Logf("verdicts %s\n%s", verdicts, events)
			return
		case time.Now().After(deadline):
			f.t.Fatalf("verdicts %s after %s: a founder waits forever\n%s", verdicts, limit, events)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (f *founders) stopAll() {
	f.mu.Lock()
	runs := f.running
	f.running = make([]*founderRun, 3)
	f.mu.Unlock()
	for _, r := range runs {
		if r != nil {
			r.cancel()
			<-r.done
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.etcd {
		if s != nil {
			_ = s.Close()
		}
	}
}

func TestSelfIn(t *testing.T) {
	self := "https://10.0.0.3:2380"
	other := peerMember{Name: "etcd-10-0-0-1", PeerURLs: []string{"https://10.0.0.1:2380"}, ClientURLs: []string{"https://10.0.0.1:2379"}}
	for _, tt := range []struct {
		name    string
		members []peerMember
		want    SelfInList
	}{
		{"never started: no client URLs", []peerMember{other, {PeerURLs: []string{self}}}, SelfUnstarted},
		{"never started, named by --initial-cluster", []peerMember{other, {Name: "etcd-10-0-0-3", PeerURLs: []string{self}}}, SelfUnstarted},
		{"started: its name published", []peerMember{other, {Name: "etcd-10-0-0-3", PeerURLs: []string{self}, ClientURLs: []string{"https://10.0.0.3:2379"}}}, SelfStarted},
		{"not a member of that cluster", []peerMember{other}, SelfAbsent},
	} {
		if got := selfIn(tt.members, self); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
