package rollout

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/pki"
)

// CA rotation: etcd reads its trust bundle (the node's pki/ca.crt) only at
// start. LoadedBundle records the bundle each etcd start loaded; when the
// certificate check finds ca.crt changed since (the operator pushed a bundle
// of old and new CA, or dropped the old one), the CA job restarts the
// member, one member of the cluster at a time under the membership lock,
// only while every other voter answers, after moving leadership away.

// LoadedBundle is the trust bundle the running etcd loaded at its start.
// The agent calls BeforeStart and AfterEnsure around every start of etcd
// (its own and the runtime supervisor's).
type LoadedBundle struct {
	caFile  string
	mu      sync.Mutex
	started Bundle
	// pending is the bundle on disk just before the latest Ensure; it
	// becomes started when that Ensure started etcd.
	pending Bundle
}

// NewLoadedBundle tracks the bundle etcd loads from caFile (the node's
// ca.crt).
func NewLoadedBundle(caFile string) *LoadedBundle { return &LoadedBundle{caFile: caFile} }

// OnDisk describes the node's ca.crt now (unknown if unreadable).
func (l *LoadedBundle) OnDisk() Bundle {
	b, err := os.ReadFile(l.caFile)
	if err != nil {
		return Bundle{}
	}
	return BundleOf(b)
}

// BeforeStart snapshots the bundle an Ensure about to run would load.
func (l *LoadedBundle) BeforeStart() {
	b := l.OnDisk()
	l.mu.Lock()
	l.pending = b
	l.mu.Unlock()
}

// AfterEnsure records the snapshot as the running etcd's bundle when the
// Ensure started it (or adopted an instance whose bundle is not known yet:
// a container started by an earlier agent, assumed current).
func (l *LoadedBundle) AfterEnsure(action runtime.Action) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if action != runtime.ActionAdopted || !l.started.Known() {
		l.started = l.pending
	}
}

// Started is the bundle the running etcd loaded.
func (l *LoadedBundle) Started() Bundle {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.started
}

// CAJob restarts the local member when the trust bundle it loaded is not
// the node's ca.crt any more. The certificate check runs it after renewal.
type CAJob struct {
	n      Node
	bundle *LoadedBundle

	mu sync.Mutex
	// waiting says why a needed restart waits ("" when none waits).
	waiting string
	// recorded is the CA state last written to the cluster.
	recorded CAState
}

// NewCAJob returns the CA restart job of n, whose etcd starts are recorded
// in bundle.
func NewCAJob(n Node, bundle *LoadedBundle) *CAJob { return &CAJob{n: n, bundle: bundle} }

// Waiting is why a needed restart waits ("" when none does): the
// supervision loop appends it to STATUS=.
func (j *CAJob) Waiting() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.waiting
}

func (j *CAJob) setWaiting(why string) {
	j.mu.Lock()
	j.waiting = why
	j.mu.Unlock()
}

// Run restarts the local member when its trust bundle changed and the
// cluster allows it now; otherwise it says why it waits (Waiting), and the
// next round tries again. The error it returns (the restart failed) is
// already in the report and the log.
func (j *CAJob) Run(ctx context.Context) error {
	started, current := j.bundle.Started(), j.bundle.OnDisk()
	j.record(ctx, started)
	if need, _ := Needed(started, current); !need {
		j.setWaiting("")
		return nil
	}
	why, err := j.restart(ctx, started, current)
	if err != nil {
		j.setWaiting("CA bundle changed: etcd restart failed, retrying at the next check: " + health.ShortErr(err))
		j.n.Recorder().SetError(fmt.Errorf("CA restart: %w", err))
		j.n.Logger().Error("CA restart failed", "err", err)
		err = fmt.Errorf("CA restart: %w", err)
	} else {
		j.setWaiting(why)
		if why != "" {
			j.n.Logger().Info("CA restart waits", "reason", why)
		}
	}
	j.n.Publish()
	return err
}

// restart takes the membership lock, surveys the cluster under it and
// restarts the local member if Plan allows it. It returns why it waits (""
// once restarted).
func (j *CAJob) restart(ctx context.Context, started, current Bundle) (string, error) {
	n, log, rec := j.n, j.n.Logger(), j.n.Recorder()
	cli, err := n.Cluster()
	if err != nil {
		return "", err
	}
	lock, err := cluster.TakeLock(ctx, cli, LockWait, log)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		_, why := Needed(started, current)
		return why + ": waiting for the membership lock (another node is restarting or changing the cluster)", nil
	}
	defer lock.Release()
	selfPeer := n.Spec().PeerURL()
	s, err := survey(ctx, n, cli, selfPeer)
	if err != nil {
		return "", err
	}
	ms := members(s)
	reboots, err := rebooting(ctx, cli, selfPeer)
	if err != nil {
		return "", err
	}
	h := n.Probe(ctx)
	step := Plan(Facts{Started: started, Current: current, LocalReady: h.Ready, SelfPeerURL: selfPeer, Members: ms, Rebooting: reboots})
	switch step.Kind {
	case None:
		return "", nil
	case Wait:
		return step.Reason, nil
	}
	if err := lock.Check(ctx); err != nil {
		return "", err
	}
	log.Warn("restart", "reason", step.Reason)
	rec.AddDecision(report.ActionCARestart, step.Reason)
	n.SetStatus(rec.Snapshot().Phase, "restarting etcd: "+step.Reason)
	begin := n.Now()
	if h.Leader {
		moveLeadership(ctx, n, selfPeer, ms)
	}
	end, err := n.Restart(ctx, n.Spec())
	defer end()
	if err != nil {
		return "", err
	}
	if err := j.waitHealthy(ctx, RestartReady); err != nil {
		return "", err
	}
	took := n.Now().Sub(begin).Round(time.Millisecond)
	rec.AddDecision(report.ActionCARestarted, fmt.Sprintf("etcd restarted with %s in %s; healthy and caught up", j.bundle.Started(), took))
	log.Info("restarted etcd for the CA bundle", "bundle", j.bundle.Started().String(), "took", took)
	return "", nil
}

// waitHealthy waits until the local member is healthy, a voter and caught
// up (the probe's ready), for up to limit.
func (j *CAJob) waitHealthy(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		h := j.n.Probe(ctx)
		if h.Ready {
			j.n.Observe(h)
			return nil
		}
		if cluster.Sleep(ctx, readyPoll) != nil {
			return fmt.Errorf("etcd not healthy within %s after its restart: %s", limit, h.Message)
		}
	}
}

// record writes what the local member runs with (the bundle its etcd
// loaded, the issuer of its server certificate) for `etcd-agent ca
// rotate`, when it changed since the last write. Best effort: a failure is
// logged and written again next round.
func (j *CAJob) record(ctx context.Context, started Bundle) {
	cli := j.n.Local()
	if cli == nil || !started.Known() {
		return
	}
	st := CAState{Member: j.n.Identity().Name, Trusts: started.Trusts, At: j.n.Now().UTC()}
	if c, err := pki.LoadCertificate(filepath.Join(j.n.Config().PKI.Dir, pki.ServerCertFile)); err == nil {
		st.IssuedBy = j.issuerName(c)
	}
	j.mu.Lock()
	same := j.recorded.same(st)
	j.mu.Unlock()
	if same {
		return
	}
	if err := RecordCAState(ctx, cli, st); err != nil {
		j.n.Logger().Warn("record the CA state", "err", err)
		return
	}
	j.mu.Lock()
	j.recorded = st
	j.mu.Unlock()
}

// issuerName is the name (pki.CAName) of the CA in the node's ca.crt that
// signed c, or c's issuer's common name when none there did.
func (j *CAJob) issuerName(c *x509.Certificate) string {
	if b, err := os.ReadFile(filepath.Join(j.n.Config().PKI.Dir, pki.CACertFile)); err == nil {
		if name, ok := pki.SignerIn(c, b); ok {
			return name
		}
	}
	return c.Issuer.CommonName
}
