package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// The spec etcd runs and its starts: a member keeps running what it ran (the
// applied spec beside the data dir) until the change job (package rollout)
// rolls a changed config out; every start records the trust bundle etcd
// loaded, for the CA job.

// specToRun is the spec etcd starts with: a member with data keeps the
// image and settings it ran (the change rolls out later, rollout.ChangeJob);
// a new member starts with the config's. What identifies the member (name,
// addresses, directories, bootstrap settings) always comes from desired.
func (a *Agent) specToRun(desired etcdconf.Spec) etcdconf.Spec {
	if a.decision.Path != membership.Restart || a.opts.Runtime.Capabilities().InProcess {
		// An embedded etcd stopped with the old agent: this start is the
		// restart, with the config's settings.
		return desired
	}
	applied, ok := sidefile.ReadAppliedSpec(a.cfg.Node.DataDir)
	if !ok {
		return desired
	}
	run := desired
	run.Image = applied.Image
	run.QuotaBackendBytes = applied.QuotaBackendBytes
	run.AutoCompactionMode, run.AutoCompactionRetention = applied.AutoCompactionMode, applied.AutoCompactionRetention
	run.SnapshotCount, run.HeartbeatMs, run.ElectionMs = applied.SnapshotCount, applied.HeartbeatMs, applied.ElectionMs
	run.ExtraFlags = applied.ExtraFlags
	if change := rollout.Describe(run, desired); change != "" {
		a.log.Info("etcd config changed: starting the member as it ran; the change rolls out one member at a time", "change", change)
	}
	return run
}

// writeAppliedSpec records s as the spec the member runs.
func (a *Agent) writeAppliedSpec(s etcdconf.Spec) {
	if err := sidefile.WriteAppliedSpec(a.cfg.Node.DataDir, s); err != nil {
		a.log.Warn("record the applied etcd spec", "file", sidefile.AppliedSpecPath(a.cfg.Node.DataDir), "err", err)
	}
	a.rec.Update(func(r *report.NodeReport) { r.EtcdImage = s.Image })
}

// etcdSpec is the spec the member runs now (the runtime supervisor's
// goroutine reads it at every restart).
func (a *Agent) etcdSpec() etcdconf.Spec {
	a.specMu.Lock()
	defer a.specMu.Unlock()
	return a.spec
}

func (a *Agent) setEtcdSpec(s etcdconf.Spec) {
	a.specMu.Lock()
	a.spec = s
	a.specMu.Unlock()
}

// beforeEtcdStart snapshots the bundle an Ensure about to run would load.
func (a *Agent) beforeEtcdStart() { a.bundle.BeforeStart() }

// afterEtcdEnsure records which bundle the running etcd loaded.
func (a *Agent) afterEtcdEnsure(action runtime.Action) { a.bundle.AfterEnsure(action) }

// plannedRestart is set while a job restarts etcd (node.Etcd.Restart): its
// exit is expected, not a runtime problem.
func (a *Agent) plannedRestart() bool { return a.planned.Load() }

func (a *Agent) setPlannedRestart(on bool) { a.planned.Store(on) }

// restartEtcd stops the local member and starts it again with etcdSpec
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
