package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Rolling changes: a changed etcd image or setting reaches a node as a new
// config file and an agent restart. The agent then keeps its member running
// what it ran (the applied spec, recorded next to the data dir) and applies
// the change like a CA restart: under the membership lock, only while every
// other voter answers, after moving leadership away, waiting until the
// member is healthy and caught up before releasing the lock. Every node
// getting the new config at once thus restarts one member at a time. etcd's
// version rules are checked first; a refused change is reported and the
// member keeps running what it ran.

// changeFailedPrefix holds, per change (rollout.ChangeID), why it failed
// on a member: the other members do not try it. Deleting the key lets the
// same change be tried again.
const changeFailedPrefix = "/_etcd-agent/change-failed/"

// changeCheckInterval is how often the supervision loop looks at a pending
// change (a no-op comparison when there is none).
const changeCheckInterval = 2 * time.Second

// appliedSpecPath records the spec the member runs, so an agent restarted
// with a changed config starts (or adopts) the member as it was and rolls
// the change out under the lock instead of at once on every node.
func appliedSpecPath(dataDir string) string { return dataDir + ".etcd-spec.json" }

func readAppliedSpec(dataDir string) (etcdconf.Spec, bool) {
	b, err := os.ReadFile(appliedSpecPath(dataDir))
	if err != nil {
		return etcdconf.Spec{}, false
	}
	var s etcdconf.Spec
	if json.Unmarshal(b, &s) != nil {
		return etcdconf.Spec{}, false
	}
	return s, true
}

func (a *Agent) writeAppliedSpec(s etcdconf.Spec) {
	s.InitialCluster, s.InitialClusterState, s.InitialClusterToken = "", "", ""
	b, err := json.MarshalIndent(s, "", "  ")
	if err == nil {
		err = writeFileAtomic(appliedSpecPath(a.cfg.Node.DataDir), b)
	}
	if err != nil {
		a.log.Warn("record the applied etcd spec", "file", appliedSpecPath(a.cfg.Node.DataDir), "err", err)
	}
	a.rec.Update(func(r *report.NodeReport) { r.EtcdImage = s.Image })
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// specToRun is the spec etcd starts with: a member with data keeps the
// image and settings it ran (the change rolls out later, checkEtcdChange);
// a new member starts with the config's. What identifies the member (name,
// addresses, directories, bootstrap settings) always comes from desired.
func (a *Agent) specToRun(desired etcdconf.Spec) etcdconf.Spec {
	if a.decision.Path != membership.Restart || a.opts.Runtime.Capabilities().InProcess {
		// An embedded etcd stopped with the old agent: this start is the
		// restart, with the config's settings.
		return desired
	}
	applied, ok := readAppliedSpec(a.cfg.Node.DataDir)
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

// checkEtcdChange applies a pending change of etcd image or settings when
// the cluster allows it now, and publishes where it stands.
func (a *Agent) checkEtcdChange(ctx context.Context) {
	applied, desired := a.etcdSpec(), a.desired
	change := rollout.Describe(applied, desired)
	if change == "" {
		a.setChange(report.EtcdChange{})
		return
	}
	state, reason, err := a.applyEtcdChange(ctx, applied, desired)
	if err != nil {
		state, reason = report.ChangeFailed, "etcd config change failed, retrying: "+health.ShortErr(err)
		a.rec.SetError(fmt.Errorf("etcd config change: %w", err))
		a.log.Error("etcd config change failed", "change", change, "err", err)
	}
	if state == "" {
		a.setChange(report.EtcdChange{})
		return
	}
	a.setChange(report.EtcdChange{State: state, Change: change, Reason: reason})
}

// setChange publishes c, logging each new state or reason once (a refused
// change is looked at again every changeCheckInterval).
func (a *Agent) setChange(c report.EtcdChange) {
	prev := a.rec.Snapshot().EtcdChange
	if prev.State == c.State && prev.Change == c.Change && prev.Reason == c.Reason {
		return
	}
	switch c.State {
	case report.ChangeRefused:
		a.log.Error("etcd config change refused", "change", c.Change, "reason", c.Reason)
		a.rec.AddDecision(report.ActionChangeRefused, c.Reason)
	case report.ChangeWaiting:
		a.log.Info("etcd config change waits", "change", c.Change, "reason", c.Reason)
	}
	if c.State != "" {
		c.Since = a.now().UTC()
	}
	a.rec.Update(func(r *report.NodeReport) { r.EtcdChange = c })
	a.rec.SetProblems("etcd-change", changeProblems(a.id.Name, c))
	a.flush()
}

// changeProblems is a change's state as problems (status, STATUS=, metrics).
func changeProblems(member string, c report.EtcdChange) []problem.Problem {
	switch c.State {
	case report.ChangeRefused:
		return []problem.Problem{problem.EtcdChangeRefused.New(member, c.Reason)}
	case report.ChangeFailed:
		return []problem.Problem{problem.EtcdChangeFailed.New(member, c.Reason)}
	case report.ChangeWaiting, report.ChangeRestarting:
		return []problem.Problem{problem.EtcdChangeRolling.New(member, c.Reason)}
	}
	return nil
}

// applyEtcdChange checks etcd's version rules, takes the membership lock
// and restarts the member with desired if rollout.PlanChange allows it now.
// It returns the change's state and reason ("" once applied).
func (a *Agent) applyEtcdChange(ctx context.Context, applied, desired etcdconf.Spec) (report.ChangeState, string, error) {
	cluster, downgrade, storage := a.clusterVersion(ctx)
	// The version rules need no lock: a refused change is refused at once.
	if refused, _ := rollout.CheckImage(applied, desired, cluster, downgrade); refused != "" {
		step := rollout.PlanChange(rollout.ChangeFacts{Applied: applied, Desired: desired, ClusterVersion: cluster, DowngradeTarget: downgrade})
		return report.ChangeRefused, step.Reason, nil
	}
	cli, err := a.clusterClient()
	if err != nil {
		return "", "", err
	}
	failedKey := changeFailedPrefix + rollout.ChangeID(desired)
	if rollout.OnlyRaisesQuota(applied, desired) && a.noSpace(ctx, cli) {
		return a.raiseQuotaUnlocked(ctx, cli, applied, desired, failedKey)
	}
	lock, err := lockMembership(ctx, cli, caLockWait)
	if err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		return report.ChangeWaiting, "etcd config changed (" + rollout.Describe(applied, desired) + "): waiting for the membership lock (another node is restarting or changing the cluster)", nil
	}
	defer lock.release(a.log)
	facts, err := a.gatherMembers(ctx, cli, map[uint64]membership.Outage{})
	if err != nil {
		return "", "", err
	}
	gctx, cancel := context.WithTimeout(ctx, health.Timeout)
	failed, err := cli.Get(gctx, failedKey)
	cancel()
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", failedKey, err)
	}
	f := rollout.ChangeFacts{Applied: applied, Desired: desired, ClusterVersion: cluster, DowngradeTarget: downgrade, StorageVersion: storage}
	if len(failed.Kvs) > 0 {
		f.Failed = string(failed.Kvs[0].Value)
	}
	ready, leader, _ := a.changeReady(ctx)
	f.LocalReady, f.SelfPeerURL, f.Members = ready, facts.SelfPeerURL, facts.Members
	step := rollout.PlanChange(f)
	switch step.Kind {
	case rollout.None:
		return "", "", nil
	case rollout.Refuse:
		if f.Failed != "" {
			return report.ChangeFailed, step.Reason, nil
		}
		return report.ChangeRefused, step.Reason, nil
	case rollout.Wait:
		return report.ChangeWaiting, step.Reason, nil
	}
	if err := lock.check(ctx); err != nil {
		return "", "", err
	}
	return a.restartWithChange(ctx, cli, applied, desired, leader, facts, failedKey, step.Reason)
}

// restartWithChange restarts the local member with desired, moving
// leadership away first, and waits until it is healthy and caught up; if it
// is not in time, it rolls the member back and records the change as failed
// under failedKey.
func (a *Agent) restartWithChange(ctx context.Context, cli *clientv3.Client, applied, desired etcdconf.Spec, leader bool,
	facts membership.JoinFacts, failedKey, reason string) (report.ChangeState, string, error) {
	a.log.Warn("restart", "reason", reason)
	a.rec.AddDecision(report.ActionChangeRestart, reason)
	a.setChange(report.EtcdChange{State: report.ChangeRestarting, Change: rollout.Describe(applied, desired), Reason: reason})
	begin := a.now()
	if leader {
		a.moveLeadership(ctx, facts.SelfPeerURL, facts.Members)
	}
	a.setPlannedRestart(true)
	defer a.setPlannedRestart(false)
	a.setEtcdSpec(desired)
	a.plannedExit.Store("")
	err := a.restartEtcd(ctx)
	if err == nil {
		a.writeAppliedSpec(desired)
		err = a.waitChangeReady(ctx, a.opts.ChangeReadyTimeout)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		why := fmt.Sprintf("%s did not run healthy with it (%s) and was rolled back", a.id.Name, health.ShortErr(err))
		a.log.Error("etcd config change failed: rolling back", "change", rollout.Describe(applied, desired), "err", err)
		a.rec.AddDecision(report.ActionRollback, why)
		// Recorded first, so no other member tries it even if the
		// rollback fails too.
		pctx, cancel := context.WithTimeout(ctx, health.Timeout)
		_, perr := cli.Put(pctx, failedKey, why)
		cancel()
		if perr != nil {
			a.log.Error("record the failed change", "key", failedKey, "err", perr)
		}
		if err := a.rollBack(ctx, applied); err != nil {
			return "", "", fmt.Errorf("%s; rollback: %w", why, err)
		}
		return report.ChangeFailed, "etcd config changed (" + rollout.Describe(applied, desired) + "): " + why, nil
	}
	took := a.now().Sub(begin).Round(time.Millisecond)
	running := ""
	if st, err := a.client.Status(ctx, desired.ClientURL()); err == nil {
		running = " etcd " + st.Version
	}
	a.rec.AddDecision(report.ActionChangeRestarted, fmt.Sprintf("etcd restarted with %s in %s;%s healthy and caught up", rollout.Describe(applied, desired), took, running))
	a.log.Info("applied the etcd config change", "change", rollout.Describe(applied, desired), "took", took, "running", running)
	return "", "", nil
}

// noSpace reports whether etcd's NOSPACE alarm is raised.
func (a *Agent) noSpace(ctx context.Context, cli *clientv3.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	resp, err := cli.AlarmList(ctx)
	if err != nil {
		return false
	}
	for _, al := range resp.Alarms {
		if al.Alarm == etcdserverpb.AlarmType_NOSPACE {
			return true
		}
	}
	return false
}

// raiseQuotaUnlocked raises the local member's quota while a NOSPACE alarm
// refuses the membership lock's writes: the members go one at a time in ID
// order (rollout.MayRaiseQuotaUnlocked), each once every other voter
// answers and is caught up, and every lower one runs with the new quota.
// The turn is confirmed again one check interval later, so the previous
// member's agent has finished with it too.
func (a *Agent) raiseQuotaUnlocked(ctx context.Context, cli *clientv3.Client, applied, desired etcdconf.Spec, failedKey string) (report.ChangeState, string, error) {
	change := "etcd config changed (" + rollout.Describe(applied, desired) + ")"
	var facts membership.JoinFacts
	var leader bool
	for confirmed := false; ; confirmed = true {
		var err error
		if facts, err = a.gatherMembers(ctx, cli, map[uint64]membership.Outage{}); err != nil {
			return "", "", err
		}
		ready, lead, why := a.changeReady(ctx)
		if !ready {
			return report.ChangeWaiting, change + ": waiting for the local member to be healthy and caught up (" + why + ")", nil
		}
		leader = lead
		selfID, quotas := a.memberQuotas(ctx, cli, facts)
		if selfID == 0 {
			// Without its own ID the member cannot take its turn.
			return report.ChangeWaiting, change + ": the local member is not in the member list", nil
		}
		if ok, why := rollout.MayRaiseQuotaUnlocked(selfID, desired.QuotaBackendBytes, quotas); !ok {
			return report.ChangeWaiting, change + ": " + why, nil
		}
		if confirmed {
			break
		}
		if err := sleepCtx(ctx, changeCheckInterval); err != nil {
			return "", "", err
		}
	}
	return a.restartWithChange(ctx, cli, applied, desired, leader, facts, failedKey,
		change+": the NOSPACE alarm refuses the membership lock, so members raise their quota one at a time in ID order: restarting etcd to load it")
}

// memberQuotas asks every member for its quota and applied index: a member
// is caught up when it applied what the leader had committed.
func (a *Agent) memberQuotas(ctx context.Context, cli *clientv3.Client, facts membership.JoinFacts) (selfID uint64, quotas []rollout.MemberQuota) {
	status := func(urls []string) *clientv3.StatusResponse {
		for _, u := range urls {
			sctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
			st, err := cli.Status(sctx, u)
			cancel()
			if err == nil {
				return st
			}
		}
		return nil
	}
	statuses := make([]*clientv3.StatusResponse, len(facts.Members))
	var committed uint64
	for i, m := range facts.Members {
		if slices.Contains(m.PeerURLs, facts.SelfPeerURL) {
			selfID = m.ID
		}
		if statuses[i] = status(m.ClientURLs); statuses[i] != nil && statuses[i].Leader == m.ID {
			committed = statuses[i].RaftIndex
		}
	}
	quotas = make([]rollout.MemberQuota, len(facts.Members))
	for i, m := range facts.Members {
		quotas[i] = rollout.MemberQuota{ID: m.ID, Name: m.Name, Learner: m.IsLearner, Healthy: m.Healthy && statuses[i] != nil}
		if st := statuses[i]; st != nil {
			quotas[i].Quota = st.DbSizeQuota
			quotas[i].CaughtUp = committed > 0 && st.RaftAppliedIndex >= committed
		}
	}
	return selfID, quotas
}

// rollBack restarts the member with the spec it ran before a change that
// failed, and waits for it to be healthy again (the lock is still held).
func (a *Agent) rollBack(ctx context.Context, applied etcdconf.Spec) error {
	a.setEtcdSpec(applied)
	if err := a.restartEtcd(ctx); err != nil {
		return err
	}
	a.writeAppliedSpec(applied)
	if err := a.waitChangeReady(ctx, caRestartReady); err != nil {
		return err
	}
	a.rec.AddDecision(report.ActionRolledBack, "etcd runs "+orDefault(applied.Image, "the agent's etcd")+" with the settings it ran before; healthy and caught up")
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// changeReady reports whether the local member is a voter with a leader
// that serves a linearizable read (caught up), as the health probe's ready,
// except that a NOSPACE alarm does not count against it: raising
// etcd.quotaBackendBytes is how an operator clears one, and that change
// must roll out. leader says whether the member leads; why, when not ready.
func (a *Agent) changeReady(ctx context.Context) (ready, leader bool, why string) {
	if h := a.probe(ctx); h.Ready {
		return true, h.Leader, ""
	}
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	st, err := a.client.Status(ctx, a.etcdSpec().ClientURL())
	switch {
	case err != nil:
		return false, false, "status: " + health.ShortErr(err)
	case st.IsLearner:
		return false, false, "a learner"
	case st.Leader == 0:
		return false, false, "no leader"
	}
	for _, e := range st.Errors {
		if !strings.Contains(e, "NOSPACE") {
			return false, false, e
		}
	}
	if _, err := a.client.Get(ctx, "health"); err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		return false, false, "linearizable read: " + health.ShortErr(err)
	}
	return true, st.Leader == st.Header.GetMemberId(), ""
}

// waitChangeReady waits until changeReady, for up to limit.
func (a *Agent) waitChangeReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ready, _, why := a.changeReady(ctx)
		if ready {
			a.observe(a.probe(ctx))
			return nil
		}
		select {
		case <-ctx.Done():
			if exit, _ := a.plannedExit.Load().(string); exit != "" {
				why += "; etcd last " + exit
			}
			return fmt.Errorf("etcd not healthy within %s after its restart: %s", limit, why)
		case <-time.After(readyPoll):
		}
	}
}

// moveLeadership hands leadership to another healthy voter before the local
// member restarts; etcd's graceful stop would too, but only after the
// followers noticed, and writes would wait on it meanwhile.
func (a *Agent) moveLeadership(ctx context.Context, selfPeerURL string, members []membership.ClusterMember) {
	to, ok := rollout.LeaderTarget(selfPeerURL, members)
	if !ok {
		return
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := a.client.MoveLeader(mctx, to)
	cancel()
	if err != nil {
		a.log.Warn("move leadership before the restart", "to", fmt.Sprintf("%x", to), "err", err)
		return
	}
	a.log.Info("moved leadership before the restart", "to", fmt.Sprintf("%x", to))
}

// clusterVersion asks the local member for etcd's cluster version (its
// /version endpoint, "3.6.0"), the enabled downgrade target ("" when none)
// and its storage version. Each is "" when the member does not say.
func (a *Agent) clusterVersion(ctx context.Context) (cluster, downgrade, storage string) {
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	spec := a.etcdSpec()
	if st, err := a.client.Status(ctx, spec.ClientURL()); err == nil {
		storage = st.StorageVersion
		if st.DowngradeInfo != nil && st.DowngradeInfo.Enabled {
			if v, err := rollout.ParseVersion(st.DowngradeInfo.TargetVersion); err == nil {
				downgrade = fmt.Sprintf("%d.%d", v.Major, v.Minor)
			}
		}
	}
	tlsCfg, err := pki.ClientTLS(a.cfg.PKI.Dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return "", downgrade, storage
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	code, body, err := get(ctx, hc, spec.ClientURL()+"/version")
	if err != nil || code != http.StatusOK {
		return "", downgrade, storage
	}
	var v struct {
		Cluster string `json:"etcdcluster"`
	}
	if json.Unmarshal(body, &v) != nil || v.Cluster == "not_decided" {
		return "", downgrade, storage
	}
	return v.Cluster, downgrade, storage
}
