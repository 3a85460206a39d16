package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Keys the agent keeps in the cluster itself, away from users' keys.
const (
	// membershipLockKey serializes membership changes cluster-wide.
	membershipLockKey = "/_etcd-agent/lock/membership"
	// heartbeatPrefix + member ID (hex) holds the time its agent last saw
	// it healthy; a joining node uses it to tell how long a member is down.
	heartbeatPrefix = "/_etcd-agent/heartbeat/"
)

// Timing of the join path.
const (
	// lockTTL is how long the membership lock outlives an agent that died
	// holding it.
	lockTTL = 10 * time.Second
	// formedDialTimeout, formedStatusTimeout and formedProbeTimeout bound
	// the check for an already formed cluster.
	formedDialTimeout   = 500 * time.Millisecond
	formedStatusTimeout = 500 * time.Millisecond
	formedProbeTimeout  = 2 * time.Second
	// memberProbeTimeout bounds one member's status query while planning.
	memberProbeTimeout = 2 * time.Second
	// standbyRetry is how often a standby node looks for a free slot.
	standbyRetry = 3 * time.Second
)

// clientURLFor turns a member's peer URL into its client URL: members run
// with the same ports, so only the host carries over.
func (a *Agent) clientURLFor(peerURL string) (string, error) {
	u, err := url.Parse(peerURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("peer URL %q has no host", peerURL)
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(a.cfg.Etcd.ClientPort)), nil
}

// endpointBook is a discovery source that also keeps the formed cluster's
// client URLs (v3 discovery): founding members may be long gone when a
// replacement boots.
type endpointBook interface {
	ClusterEndpoints(ctx context.Context) ([]string, error)
	PublishClusterEndpoints(ctx context.Context, endpoints []string) error
}

// publishEndpoints records the cluster's client URLs in discovery after this
// node changed the membership (bootstrap, join, leave). Best effort: a
// failure only leaves an older list there.
func (a *Agent) publishEndpoints(ctx context.Context, eps []string) {
	book, ok := a.disc.(endpointBook)
	if !ok || len(eps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := book.PublishClusterEndpoints(ctx, sortedCopy(eps)); err != nil {
		a.log.Warn("publish cluster endpoints to discovery", "err", err)
	}
}

// candidateEndpoints are the client URLs where a formed cluster may answer:
// the discovered members', the ones published in discovery and the ones this
// node last knew, never its own.
func (a *Agent) candidateEndpoints(ctx context.Context, res discovery.Result) []string {
	self := a.specBase().ClientURL()
	var eps []string
	for _, m := range res.Members {
		for _, p := range strings.Split(m.PeerURL, ",") {
			if ep, err := a.clientURLFor(p); err == nil {
				eps = append(eps, ep)
			}
		}
	}
	eps = append(eps, readEndpoints(a.cfg.Node.DataDir)...)
	if book, ok := a.disc.(endpointBook); ok {
		published, err := book.ClusterEndpoints(ctx)
		if err != nil {
			a.log.Warn("read cluster endpoints from discovery", "err", err)
		}
		eps = append(eps, published...)
	}
	slices.Sort(eps)
	eps = slices.Compact(eps)
	return slices.DeleteFunc(eps, func(ep string) bool { return ep == self })
}

// newClusterClient connects to the cluster through eps with the agent's
// client certificate.
func (a *Agent) newClusterClient(eps []string) (*clientv3.Client, error) {
	tlsCfg, err := pki.ClientTLS(a.cfg.PKI.Dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zapDiscard()})
	if err != nil {
		return nil, fmt.Errorf("connect to cluster %v: %w", eps, err)
	}
	return cli, nil
}

// clusterFormed reports whether a cluster already answers at eps; when it
// does it returns a client to it. It is quick when nothing is formed yet (the
// usual simultaneous bootstrap): endpoints that refuse connections are
// skipped, and a member that is up but has no leader is still waiting for its
// founding peers.
func (a *Agent) clusterFormed(ctx context.Context, eps []string) (*clientv3.Client, bool) {
	var live []string
	for _, ep := range eps {
		if dialable(ctx, ep) {
			live = append(live, ep)
		}
	}
	if len(live) == 0 {
		return nil, false
	}
	cli, err := a.newClusterClient(live)
	if err != nil {
		return nil, false
	}
	for _, ep := range live {
		// Status is served without quorum: a leader means a formed cluster.
		// A founding peer that listens but does not serve yet is waiting
		// like us; a formed member answers in milliseconds.
		sctx, cancel := context.WithTimeout(ctx, formedStatusTimeout)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil || st.Leader == 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, formedProbeTimeout)
		_, err = cli.MemberList(lctx)
		cancel()
		if err == nil {
			return cli, true
		}
	}
	_ = cli.Close()
	return nil, false
}

// dialable reports whether something accepts TCP connections at the URL's
// host:port: a quick way to tell a stopped member from a slow one.
func dialable(ctx context.Context, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: formedDialTimeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// joinCluster is the path of a node with no data that finds a formed
// cluster. Under the cluster-wide membership lock it removes what must go
// (its past self, a member dead past the grace period, a stale learner),
// then adds itself as a learner. The lock stays held until this node is
// promoted (released in releaseJoin), so one learner joins at a time.
func (a *Agent) joinCluster(ctx context.Context, res discovery.Result) (membership.Decision, error) {
	eps := a.candidateEndpoints(ctx, res)
	downSince := map[uint64]time.Time{}
	bo := backoff.Backoff{Min: time.Second, Max: 15 * time.Second}
	for {
		cli, ok := a.clusterFormed(ctx, eps)
		if !ok {
			a.setPhase(report.PhaseJoining, fmt.Sprintf("discovery is full without this node; waiting for the cluster at %s to answer", strings.Join(eps, ",")))
			if err := sleepCtx(ctx, bo.Next()); err != nil {
				return membership.Decision{}, err
			}
			continue
		}
		bo.Reset()
		d, done, err := a.joinOnce(ctx, cli, res, downSince)
		if done {
			return d, err
		}
		_ = cli.Close()
		if err != nil {
			if ctx.Err() != nil {
				return membership.Decision{}, ctx.Err()
			}
			a.log.Warn("join attempt failed", "err", err)
			a.setPhase(report.PhaseJoining, "join attempt failed, retrying: "+shortErr(err))
		}
		if err := sleepCtx(ctx, standbyRetry); err != nil {
			return membership.Decision{}, err
		}
	}
}

// joinOnce takes the lock and plans until it adds this node, resumes an
// interrupted join, finds it must bootstrap, or must wait. done is false
// when the caller should look again later (standby or an error).
func (a *Agent) joinOnce(ctx context.Context, cli *clientv3.Client, res discovery.Result, downSince map[uint64]time.Time) (d membership.Decision, done bool, err error) {
	a.setPhase(report.PhaseJoining, "waiting for the cluster's membership lock")
	lock, err := lockMembership(ctx, cli, 0)
	if err != nil {
		return d, false, err
	}
	keep := false
	defer func() {
		if !keep {
			lock.release(a.log)
		}
	}()
	self := a.self()
	for {
		facts, err := a.joinFacts(ctx, cli, downSince)
		if err != nil {
			return d, false, err
		}
		step := membership.PlanJoin(facts)
		a.log.Info("join plan", "step", step.Kind, "reason", step.Reason)
		switch step.Kind {
		case membership.StepStandby:
			a.setPhase(report.PhaseStandby, step.Reason)
			return d, false, nil
		case membership.StepFounding:
			d, err := membership.Decide(membership.Facts{Self: self, Discovered: discovered(res), SelfDiscovered: res.Self, Token: res.Token})
			return d, true, err
		case membership.StepRemove:
			a.setPhase(report.PhaseJoining, fmt.Sprintf("removing member %s: %s", step.Remove.Name, step.Remove.Reason))
			if err := a.removeMember(ctx, cli, step.Remove.ID, func(msg string) {
				a.setPhase(report.PhaseJoining, fmt.Sprintf("removing member %s: %s", step.Remove.Name, msg))
			}); err != nil {
				return d, false, fmt.Errorf("remove member %s (%x): %w", step.Remove.Name, step.Remove.ID, err)
			}
			a.rec.AddDecision("remove-member", fmt.Sprintf("%s (%x): %s", step.Remove.Name, step.Remove.ID, step.Remove.Reason))
			a.log.Warn("removed member", "member", step.Remove.Name, "id", fmt.Sprintf("%x", step.Remove.ID), "reason", step.Remove.Reason)
			delete(downSince, step.Remove.ID)
			_, _ = cli.Delete(ctx, heartbeatKey(step.Remove.ID))
		case membership.StepResume, membership.StepAdd:
			if step.Kind == membership.StepAdd {
				a.setPhase(report.PhaseJoining, "adding this node as a learner: "+step.Reason)
				err := retryUnhealthy(ctx, func(ctx context.Context) error {
					_, err := cli.MemberAddAsLearner(ctx, []string{self.PeerURL})
					return err
				}, func(err error) {
					a.setPhase(report.PhaseJoining, fmt.Sprintf("adding this node as a learner: etcd refuses until every member has been connected for a while (%v); retrying", err))
				})
				if err != nil {
					return d, false, fmt.Errorf("add this node as learner: %w", err)
				}
			}
			if err := a.joinHook("added"); err != nil {
				return d, true, err
			}
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			list, err := cli.MemberList(lctx)
			cancel()
			if err != nil {
				return d, false, fmt.Errorf("member list after add: %w", err)
			}
			ms := make([]membership.ClusterMember, 0, len(list.Members))
			for _, m := range list.Members {
				ms = append(ms, membership.ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs})
			}
			keep = true
			a.joinLock, a.cluster = lock, cli
			writeEndpoints(a.cfg.Node.DataDir, a.log, clientURLsOf(list.Members, self.PeerURL))
			return membership.Decision{Path: membership.Join, InitialClusterState: "existing", Token: res.Token,
				InitialCluster: membership.ExistingCluster(ms, self), Reason: step.Reason}, true, nil
		}
	}
}

// joinFacts lists the members and probes each one while the lock is held.
func (a *Agent) joinFacts(ctx context.Context, cli *clientv3.Client, downSince map[uint64]time.Time) (membership.JoinFacts, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	list, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		return membership.JoinFacts{}, fmt.Errorf("member list: %w", err)
	}
	beats := a.heartbeats(ctx, cli)
	now := a.now()
	facts := membership.JoinFacts{SelfPeerURL: a.self().PeerURL, DesiredSize: a.cfg.Cluster.Size, Grace: a.cfg.Cluster.DeadMemberGrace.D()}
	ms := make([]membership.ClusterMember, len(list.Members))
	done := make(chan struct{})
	for i, m := range list.Members {
		ms[i] = membership.ClusterMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
		go func() {
			defer func() { done <- struct{}{} }()
			for _, u := range m.ClientURLs {
				if !dialable(ctx, u) {
					continue // refused: down, no need to wait out a gRPC timeout
				}
				sctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
				_, err := cli.Status(sctx, u)
				cancel()
				if err == nil {
					ms[i].Healthy = true
					return
				}
			}
		}()
	}
	for range list.Members {
		<-done
	}
	for i := range ms {
		m := &ms[i]
		if m.Healthy {
			delete(downSince, m.ID)
			continue
		}
		if _, ok := downSince[m.ID]; !ok {
			downSince[m.ID] = now
		}
		m.DownFor = now.Sub(downSince[m.ID])
		if beat, ok := beats[m.ID]; ok && now.Sub(beat) > m.DownFor {
			m.DownFor = now.Sub(beat)
		}
	}
	facts.Members = ms
	if eps := clientURLsOf(list.Members, facts.SelfPeerURL); len(eps) > 0 {
		cli.SetEndpoints(eps...)
	}
	return facts, nil
}

// heartbeats reads every agent's last healthy time; a failure only means
// less is known.
func (a *Agent) heartbeats(ctx context.Context, cli *clientv3.Client) map[uint64]time.Time {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, heartbeatPrefix, clientv3.WithPrefix())
	if err != nil {
		a.log.Debug("read heartbeats", "err", err)
		return nil
	}
	out := map[uint64]time.Time{}
	for _, kv := range resp.Kvs {
		id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), heartbeatPrefix), 16, 64)
		if err != nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, string(kv.Value)); err == nil {
			out[id] = t
		}
	}
	return out
}

func heartbeatKey(id uint64) string { return heartbeatPrefix + strconv.FormatUint(id, 16) }

// heartbeat records that this node's member is healthy now.
func (a *Agent) heartbeat(ctx context.Context, id uint64) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := a.client.Put(ctx, heartbeatKey(id), a.now().UTC().Format(time.RFC3339Nano)); err != nil {
		a.log.Debug("heartbeat", "err", err)
	}
}

// promote asks the cluster to make this learner a voter; etcd refuses until
// the learner is in sync with the leader, which is reported as progress.
func (a *Agent) promote(ctx context.Context, id uint64) (promoted bool, progress string) {
	cli, err := a.clusterClient()
	if err != nil {
		return false, shortErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := cli.MemberPromote(ctx, id); err != nil {
		return false, a.catchUp(ctx, cli)
	}
	a.rec.AddDecision("promote", "learner caught up with the leader: promoted to voter")
	a.log.Info("promoted to voter", "id", fmt.Sprintf("%x", id))
	return true, "promoted to voter"
}

// catchUp describes how far the local learner is behind the leader.
func (a *Agent) catchUp(ctx context.Context, cli *clientv3.Client) string {
	local, err := a.client.Status(ctx, a.spec.ClientURL())
	if err != nil {
		return "catching up"
	}
	for _, ep := range cli.Endpoints() {
		st, err := cli.Status(ctx, ep)
		if err != nil || st.Header.MemberId != st.Leader {
			continue
		}
		if st.RaftIndex == 0 {
			break
		}
		pct := min(100, int(100*local.RaftAppliedIndex/st.RaftIndex))
		return fmt.Sprintf("catching up %d%% (applied %d of leader's %d)", pct, local.RaftAppliedIndex, st.RaftIndex)
	}
	return fmt.Sprintf("catching up (applied %d)", local.RaftAppliedIndex)
}

// clusterClient is a client to the other members, for what a learner
// cannot serve (member list, promotion).
func (a *Agent) clusterClient() (*clientv3.Client, error) {
	if a.cluster != nil {
		return a.cluster, nil
	}
	self := a.spec.ClientURL()
	eps := slices.DeleteFunc(readEndpoints(a.cfg.Node.DataDir), func(ep string) bool { return ep == self })
	if len(eps) == 0 {
		return nil, errors.New("no other member's client URL known to reach the cluster")
	}
	cli, err := a.newClusterClient(eps)
	if err != nil {
		return nil, err
	}
	a.cluster = cli
	return cli, nil
}

// releaseJoin gives the membership lock back once this node is a voter.
func (a *Agent) releaseJoin() {
	if a.joinLock != nil {
		a.joinLock.release(a.log)
		a.joinLock = nil
	}
}

// membershipLock is the cluster-wide lock every membership change holds:
// an etcd mutex on a session lease, so a holder that dies frees it within
// lockTTL.
type membershipLock struct {
	mu   *concurrency.Mutex
	sess *concurrency.Session
}

// lockMembership waits for the lock for up to wait (0: until ctx ends). The
// session lives with ctx, not with the wait.
func lockMembership(ctx context.Context, cli *clientv3.Client, wait time.Duration) (*membershipLock, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(lockTTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("membership lock session: %w", err)
	}
	mu := concurrency.NewMutex(sess, membershipLockKey)
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if wait > 0 {
		lctx, cancel = context.WithTimeout(ctx, wait)
	}
	defer cancel()
	if err := mu.Lock(lctx); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("take membership lock: %w", err)
	}
	return &membershipLock{mu: mu, sess: sess}, nil
}

// release unlocks and ends the session.
func (l *membershipLock) release(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.mu.Unlock(ctx); err != nil {
		log.Debug("release membership lock", "err", err)
	}
	_ = l.sess.Close()
}

// joinHook lets tests stop the agent at a step of the join.
func (a *Agent) joinHook(step string) error {
	if a.opts.JoinHook == nil {
		return nil
	}
	return a.opts.JoinHook(step)
}

func discovered(res discovery.Result) []membership.Member {
	var out []membership.Member
	for _, m := range res.Members {
		out = append(out, membership.Member{Name: m.Name, PeerURL: m.PeerURL})
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
