package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/pki"
)

// CA rotation: etcd reads its trust bundle (the node's pki/ca.crt) only at
// start. The agent records the bundle each etcd start loaded; when the
// certificate check finds ca.crt changed since (the operator pushed a bundle
// of old and new CA, or dropped the old one), it restarts its member, one
// member of the cluster at a time under the membership lock, only while
// every other voter answers, after moving leadership away.

// Timing of a CA restart.
const (
	// caLockWait is how long a node waits for the membership lock before it
	// leaves the restart to its next check (another node holds it).
	caLockWait = 2 * time.Second
	// caRestartReady bounds the wait for the restarted member to be healthy
	// and caught up; the lock is held meanwhile.
	caRestartReady = 2 * time.Minute
)

// etcdBundle is the trust bundle the running etcd loaded at its start.
type etcdBundle struct {
	mu      sync.Mutex
	started rollout.Bundle
	// pending is the bundle on disk just before the runtime supervisor's
	// latest Ensure; it becomes started when that Ensure started etcd.
	pending rollout.Bundle
	// planned is set while the agent itself restarts etcd: its exit is
	// expected, not a runtime problem.
	planned bool
	// waiting says why a needed restart waits ("" when none waits).
	waiting string
}

// caBundleOnDisk describes the node's ca.crt now (unknown if unreadable).
func (a *Agent) caBundleOnDisk() rollout.Bundle {
	b, err := os.ReadFile(filepath.Join(a.cfg.PKI.Dir, pki.CACertFile))
	if err != nil {
		return rollout.Bundle{}
	}
	return rollout.BundleOf(b)
}

// beforeEtcdStart snapshots the bundle an Ensure about to run would load.
func (a *Agent) beforeEtcdStart() {
	b := a.caBundleOnDisk()
	a.bundle.mu.Lock()
	a.bundle.pending = b
	a.bundle.mu.Unlock()
}

// afterEtcdEnsure records the snapshot as the running etcd's bundle when
// Ensure started it (or adopted an instance whose bundle is not known yet:
// a container started by an earlier agent, assumed current).
func (a *Agent) afterEtcdEnsure(action runtime.Action) {
	a.bundle.mu.Lock()
	defer a.bundle.mu.Unlock()
	if action != runtime.ActionAdopted || !a.bundle.started.Known() {
		a.bundle.started = a.bundle.pending
	}
}

func (a *Agent) plannedRestart() bool {
	a.bundle.mu.Lock()
	defer a.bundle.mu.Unlock()
	return a.bundle.planned
}

func (a *Agent) setPlannedRestart(on bool) {
	a.bundle.mu.Lock()
	a.bundle.planned = on
	a.bundle.mu.Unlock()
}

func (a *Agent) setBundleWaiting(why string) {
	a.bundle.mu.Lock()
	a.bundle.waiting = why
	a.bundle.mu.Unlock()
}

// caRestartWaiting is what STATUS= appends while a needed restart waits.
func (a *Agent) caRestartWaiting() string {
	a.bundle.mu.Lock()
	defer a.bundle.mu.Unlock()
	return a.bundle.waiting
}

// checkCABundle restarts the local member when its trust bundle changed and
// the cluster allows it now; otherwise it says why it waits, and the next
// certificate check tries again.
func (a *Agent) checkCABundle(ctx context.Context) {
	a.bundle.mu.Lock()
	started := a.bundle.started
	a.bundle.mu.Unlock()
	current := a.caBundleOnDisk()
	if need, _ := rollout.Needed(started, current); !need {
		a.setBundleWaiting("")
		return
	}
	if why, err := a.restartForCA(ctx, started, current); err != nil {
		msg := "CA bundle changed: etcd restart failed, retrying at the next check: " + health.ShortErr(err)
		a.setBundleWaiting(msg)
		a.rec.SetError(fmt.Errorf("CA restart: %w", err))
		a.log.Error("CA restart failed", "err", err)
	} else {
		a.setBundleWaiting(why)
		if why != "" {
			a.log.Info("CA restart waits", "reason", why)
		}
	}
	a.flush()
}

// restartForCA takes the membership lock and restarts the local member if
// rollout.Plan allows it. It returns why it waits ("" once restarted).
func (a *Agent) restartForCA(ctx context.Context, started, current rollout.Bundle) (string, error) {
	cli, err := a.clusterClient()
	if err != nil {
		return "", err
	}
	lock, err := lockMembership(ctx, cli, caLockWait)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		_, why := rollout.Needed(started, current)
		return why + ": waiting for the membership lock (another node is restarting or changing the cluster)", nil
	}
	defer lock.release(a.log)
	facts, err := a.gatherMembers(ctx, cli, map[uint64]membership.Outage{})
	if err != nil {
		return "", err
	}
	h := a.probe(ctx)
	step := rollout.Plan(rollout.Facts{Started: started, Current: current, LocalReady: h.Ready,
		SelfPeerURL: facts.SelfPeerURL, Members: facts.Members})
	switch step.Kind {
	case rollout.None:
		return "", nil
	case rollout.Wait:
		return step.Reason, nil
	}
	if err := lock.check(ctx); err != nil {
		return "", err
	}
	a.log.Warn("restart", "reason", step.Reason)
	a.rec.AddDecision(report.ActionCARestart, step.Reason)
	a.setPhase(a.rec.Snapshot().Phase, "restarting etcd: "+step.Reason)
	begin := a.now()
	if h.Leader {
		a.moveLeadership(ctx, facts.SelfPeerURL, facts.Members)
	}
	a.setPlannedRestart(true)
	defer a.setPlannedRestart(false)
	if err := a.restartEtcd(ctx); err != nil {
		return "", err
	}
	if err := a.waitHealthy(ctx, caRestartReady); err != nil {
		return "", err
	}
	took := a.now().Sub(begin).Round(time.Millisecond)
	a.rec.AddDecision(report.ActionCARestarted, fmt.Sprintf("etcd restarted with %s in %s; healthy and caught up", a.caBundleStarted(), took))
	a.log.Info("restarted etcd for the CA bundle", "bundle", a.caBundleStarted().String(), "took", took)
	return "", nil
}

func (a *Agent) caBundleStarted() rollout.Bundle {
	a.bundle.mu.Lock()
	defer a.bundle.mu.Unlock()
	return a.bundle.started
}

// restartEtcd stops the local member and starts it again with the same spec
// (Ensure starts a stopped instance: Podman removes and recreates a stopped
// container). The runtime supervisor sees the exit as planned; its next
// Ensure adopts the new instance.
func (a *Agent) restartEtcd(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, a.cfg.Podman.StopTimeout.D()+30*time.Second)
	err := a.opts.Runtime.Stop(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("stop etcd: %w", err)
	}
	a.beforeEtcdStart()
	ectx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	action, err := a.opts.Runtime.Ensure(ectx, a.etcdSpec())
	cancel()
	if err != nil {
		// The runtime supervisor keeps trying to start it.
		return fmt.Errorf("start etcd again: %w", err)
	}
	a.afterEtcdEnsure(action)
	a.log.Info("etcd restarted", "action", action)
	return nil
}

// waitHealthy waits until the local member is healthy, a voter and caught
// up (the probe's ready).
func (a *Agent) waitHealthy(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		h := a.probe(ctx)
		if h.Ready {
			a.observe(h)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy within %s after its restart: %s", limit, h.Message)
		case <-time.After(readyPoll):
		}
	}
}
