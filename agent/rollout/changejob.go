package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Rolling changes: a changed etcd image or setting reaches a node as a new
// config file and an agent restart. The agent then keeps its member running
// what it ran (the applied spec, recorded next to the data dir) and the
// change job applies the change like a CA restart: under the membership
// lock, only while every other voter answers, after moving leadership away,
// waiting until the member is healthy and caught up before releasing the
// lock. Every node getting the new config at once thus restarts one member
// at a time. etcd's version rules are checked first; a refused change is
// reported and the member keeps running what it ran.

// ChangeCheckInterval is how often a pending change is looked at (a no-op
// comparison when there is none).
const ChangeCheckInterval = 2 * time.Second

// ChangeNode is what the change job needs of its node.
type ChangeNode interface {
	Node
	// Desired is the etcd spec the node's config asks for (Spec is the one
	// the member runs).
	Desired() etcdconf.Spec
}

// ChangeJob rolls a changed etcd image or setting out to the local member.
type ChangeJob struct {
	n ChangeNode
	// readyTimeout bounds the wait for the member restarted with the
	// change; past it the change is rolled back.
	readyTimeout time.Duration
}

// NewChangeJob returns the change job of n; a member restarted with a
// change has readyTimeout (0: RestartReady) to be healthy and caught up
// before the change is rolled back and not tried on any member.
func NewChangeJob(n ChangeNode, readyTimeout time.Duration) *ChangeJob {
	if readyTimeout <= 0 {
		readyTimeout = RestartReady
	}
	return &ChangeJob{n: n, readyTimeout: readyTimeout}
}

// Run applies a pending change of etcd image or settings when the cluster
// allows it now, and publishes where it stands. The error it returns (the
// change failed this round) is already in the report and the log.
func (j *ChangeJob) Run(ctx context.Context) error {
	applied, desired := j.n.Spec(), j.n.Desired()
	change := Describe(applied, desired)
	if change == "" {
		j.setChange(report.EtcdChange{})
		return nil
	}
	state, reason, err := j.apply(ctx, applied, desired)
	if err != nil {
		state, reason = report.ChangeFailed, "etcd config change failed, retrying: "+health.ShortErr(err)
		j.n.Recorder().SetError(fmt.Errorf("etcd config change: %w", err))
		j.n.Logger().Error("etcd config change failed", "change", change, "err", err)
		err = fmt.Errorf("etcd config change: %w", err)
	}
	if state == "" {
		j.setChange(report.EtcdChange{})
		return err
	}
	j.setChange(report.EtcdChange{State: state, Change: change, Reason: reason})
	return err
}

// setChange publishes c, logging each new state or reason once (a refused
// change is looked at again every ChangeCheckInterval).
func (j *ChangeJob) setChange(c report.EtcdChange) {
	rec, log := j.n.Recorder(), j.n.Logger()
	prev := rec.Snapshot().EtcdChange
	if prev.State == c.State && prev.Change == c.Change && prev.Reason == c.Reason {
		return
	}
	switch c.State {
	case report.ChangeRefused:
		log.Error("etcd config change refused", "change", c.Change, "reason", c.Reason)
		rec.AddDecision(report.ActionChangeRefused, c.Reason)
	case report.ChangeWaiting:
		log.Info("etcd config change waits", "change", c.Change, "reason", c.Reason)
	}
	if c.State != "" {
		c.Since = j.n.Now().UTC()
	}
	rec.Update(func(r *report.NodeReport) { r.EtcdChange = c })
	rec.SetProblems("etcd-change", changeProblems(j.n.Identity().Name, c))
	j.n.Publish()
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

// apply checks etcd's version rules, takes the membership lock, surveys the
// cluster under it and restarts the member with desired if PlanChange allows
// it now. It returns the change's state and reason ("" once applied).
func (j *ChangeJob) apply(ctx context.Context, applied, desired etcdconf.Spec) (report.ChangeState, string, error) {
	n := j.n
	clusterVersion, downgrade, storage := j.clusterVersion(ctx)
	// The version rules need no lock: a refused change is refused at once.
	if refused, _ := CheckImage(applied, desired, clusterVersion, downgrade); refused != "" {
		step := PlanChange(ChangeFacts{Applied: applied, Desired: desired, ClusterVersion: clusterVersion, DowngradeTarget: downgrade})
		return report.ChangeRefused, step.Reason, nil
	}
	cli, err := n.Cluster()
	if err != nil {
		return "", "", err
	}
	failedKey := keys.ChangeFailed(ChangeID(desired))
	if OnlyRaisesQuota(applied, desired) && noSpace(ctx, cli) {
		return j.raiseQuotaUnlocked(ctx, cli, applied, desired, failedKey)
	}
	lock, err := cluster.TakeLock(ctx, cli, LockWait, n.Logger())
	if err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		return report.ChangeWaiting, "etcd config changed (" + Describe(applied, desired) + "): waiting for the membership lock (another node is restarting or changing the cluster)", nil
	}
	defer lock.Release()
	selfPeer := applied.PeerURL()
	s, err := survey(ctx, n, cli, selfPeer)
	if err != nil {
		return "", "", err
	}
	gctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
	failed, err := cli.Get(gctx, failedKey)
	cancel()
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", failedKey, err)
	}
	f := ChangeFacts{Applied: applied, Desired: desired, ClusterVersion: clusterVersion, DowngradeTarget: downgrade, StorageVersion: storage}
	if len(failed.Kvs) > 0 {
		f.Failed = string(failed.Kvs[0].Value)
	}
	if f.Rebooting, err = rebooting(ctx, cli, selfPeer); err != nil {
		return "", "", err
	}
	ready, leader, _ := j.changeReady(ctx)
	f.LocalReady, f.SelfPeerURL, f.Members = ready, selfPeer, members(s)
	step := PlanChange(f)
	switch step.Kind {
	case None:
		return "", "", nil
	case Refuse:
		if f.Failed != "" {
			return report.ChangeFailed, step.Reason, nil
		}
		return report.ChangeRefused, step.Reason, nil
	case Wait:
		return report.ChangeWaiting, step.Reason, nil
	}
	if err := lock.Check(ctx); err != nil {
		return "", "", err
	}
	return j.restartWithChange(ctx, cli, applied, desired, leader, s, failedKey, step.Reason)
}

// restartWithChange restarts the local member with desired, moving
// leadership away first (to a voter that answered survey s), and waits until
// it is healthy and caught up; if it is not in time, it rolls the member
// back and records the change as failed under failedKey.
func (j *ChangeJob) restartWithChange(ctx context.Context, cli *clientv3.Client, applied, desired etcdconf.Spec, leader bool,
	s cluster.Survey, failedKey, reason string) (report.ChangeState, string, error) {
	n, log, rec := j.n, j.n.Logger(), j.n.Recorder()
	log.Warn("restart", "reason", reason)
	rec.AddDecision(report.ActionChangeRestart, reason)
	j.setChange(report.EtcdChange{State: report.ChangeRestarting, Change: Describe(applied, desired), Reason: reason})
	begin := n.Now()
	if leader {
		moveLeadership(ctx, n, applied.PeerURL(), members(s))
	}
	end, err := n.Restart(ctx, desired)
	defer end()
	if err == nil {
		err = j.waitChangeReady(ctx, j.readyTimeout)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		why := fmt.Sprintf("%s did not run healthy with it (%s) and was rolled back", n.Identity().Name, health.ShortErr(err))
		log.Error("etcd config change failed: rolling back", "change", Describe(applied, desired), "err", err)
		rec.AddDecision(report.ActionRollback, why)
		// Recorded first, so no other member tries it even if the
		// rollback fails too.
		pctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
		_, perr := cli.Put(pctx, failedKey, why)
		cancel()
		if perr != nil {
			log.Error("record the failed change", "key", failedKey, "err", perr)
		}
		end() // the rollback is a restart of its own
		if err := j.rollBack(ctx, applied); err != nil {
			return "", "", fmt.Errorf("%s; rollback: %w", why, err)
		}
		return report.ChangeFailed, "etcd config changed (" + Describe(applied, desired) + "): " + why, nil
	}
	took := n.Now().Sub(begin).Round(time.Millisecond)
	running := ""
	sctx, cancel := context.WithTimeout(ctx, health.Timeout)
	if st, err := n.Local().Status(sctx, desired.ClientURL()); err == nil {
		running = " etcd " + st.Version
	}
	cancel()
	rec.AddDecision(report.ActionChangeRestarted, fmt.Sprintf("etcd restarted with %s in %s;%s healthy and caught up", Describe(applied, desired), took, running))
	log.Info("applied the etcd config change", "change", Describe(applied, desired), "took", took, "running", running)
	return "", "", nil
}

// noSpace reports whether etcd's NOSPACE alarm is raised.
func noSpace(ctx context.Context, cli *clientv3.Client) bool {
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
// order (MayRaiseQuotaUnlocked), each once every other voter answers and is
// caught up, and every lower one runs with the new quota. The turn is
// confirmed on a new survey one check interval later, so the previous
// member's agent has finished with it too.
func (j *ChangeJob) raiseQuotaUnlocked(ctx context.Context, cli *clientv3.Client, applied, desired etcdconf.Spec, failedKey string) (report.ChangeState, string, error) {
	change := "etcd config changed (" + Describe(applied, desired) + ")"
	selfPeer := applied.PeerURL()
	var s cluster.Survey
	var leader bool
	for confirmed := false; ; confirmed = true {
		var err error
		if s, err = survey(ctx, j.n, cli, selfPeer); err != nil {
			return "", "", err
		}
		ready, lead, why := j.changeReady(ctx)
		if !ready {
			return report.ChangeWaiting, change + ": waiting for the local member to be healthy and caught up (" + why + ")", nil
		}
		leader = lead
		self, ok := s.ByPeerURL(selfPeer)
		if !ok {
			// Without its own ID the member cannot take its turn.
			return report.ChangeWaiting, change + ": the local member is not in the member list", nil
		}
		if ok, why := MayRaiseQuotaUnlocked(self.ID, desired.QuotaBackendBytes, quotas(s)); !ok {
			return report.ChangeWaiting, change + ": " + why, nil
		}
		if confirmed {
			break
		}
		if err := cluster.Sleep(ctx, ChangeCheckInterval); err != nil {
			return "", "", err
		}
	}
	return j.restartWithChange(ctx, cli, applied, desired, leader, s, failedKey,
		change+": the NOSPACE alarm refuses the membership lock, so members raise their quota one at a time in ID order: restarting etcd to load it")
}

// rollBack restarts the member with the spec it ran before a change that
// failed, and waits for it to be healthy again (the lock is still held).
func (j *ChangeJob) rollBack(ctx context.Context, applied etcdconf.Spec) error {
	end, err := j.n.Restart(ctx, applied)
	defer end()
	if err != nil {
		return err
	}
	if err := j.waitChangeReady(ctx, RestartReady); err != nil {
		return err
	}
	j.n.Recorder().AddDecision(report.ActionRolledBack, "etcd runs "+orDefault(applied.Image, "the agent's etcd")+" with the settings it ran before; healthy and caught up")
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
func (j *ChangeJob) changeReady(ctx context.Context) (ready, leader bool, why string) {
	if h := j.n.Probe(ctx); h.Ready {
		return true, h.Leader, ""
	}
	local := j.n.Local()
	if local == nil {
		return false, false, "etcd not started"
	}
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	st, err := local.Status(ctx, j.n.Spec().ClientURL())
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
	if _, err := local.Get(ctx, "health"); err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		return false, false, "linearizable read: " + health.ShortErr(err)
	}
	return true, st.Leader == st.Header.GetMemberId(), ""
}

// waitChangeReady waits until changeReady, for up to limit.
func (j *ChangeJob) waitChangeReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ready, _, why := j.changeReady(ctx)
		if ready {
			j.n.Observe(j.n.Probe(ctx))
			return nil
		}
		if cluster.Sleep(ctx, readyPoll) != nil {
			if exit := j.n.PlannedExit(); exit != "" {
				why += "; etcd last " + exit
			}
			return fmt.Errorf("etcd not healthy within %s after its restart: %s", limit, why)
		}
	}
}

// clusterVersion asks the local member for etcd's cluster version (its
// /version endpoint, "3.6.0"), the enabled downgrade target ("" when none)
// and its storage version. Each is "" when the member does not say.
func (j *ChangeJob) clusterVersion(ctx context.Context) (clusterVersion, downgrade, storage string) {
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	spec := j.n.Spec()
	if local := j.n.Local(); local != nil {
		if st, err := local.Status(ctx, spec.ClientURL()); err == nil {
			storage = st.StorageVersion
			if st.DowngradeInfo != nil && st.DowngradeInfo.Enabled {
				if v, err := ParseVersion(st.DowngradeInfo.TargetVersion); err == nil {
					downgrade = v.minor()
				}
			}
		}
	}
	tlsCfg, err := pki.ClientTLS(j.n.Config().PKI.Dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return "", downgrade, storage
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	body, err := getOK(ctx, hc, spec.ClientURL()+"/version")
	if err != nil {
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

// getOK is the body of u, when it answers 200 OK.
func getOK(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
