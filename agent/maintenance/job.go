package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// The maintenance job: each round it surveys the cluster (every member's
// database size, the alarms) and the compaction state, asks Plan what to do,
// publishes the answer in the node's report and, when its member leads,
// carries it out. The decisions are Plan's; this file only does the I/O.
//
// The cluster's most recent defragmentation is kept at keys.LastDefrag (JSON
// report.Defrag), so every agent shows it and pacing survives a change of
// coordinator. It is written under the membership lock; under NOSPACE (no
// writes) once the alarm is disarmed.

const (
	// lockWait is how long the coordinator waits for the membership lock
	// before leaving the defragmentation to its next round.
	lockWait = 2 * time.Second
	// defragTimeout bounds one member's defragmentation (it rewrites the
	// whole database file: minutes for gigabytes).
	defragTimeout = 10 * time.Minute
	// compactTimeout bounds a NOSPACE compaction (physical: it waits for
	// the backend to drop the compacted revisions).
	compactTimeout = 2 * time.Minute
	// disarmTimeout bounds the disarm of every NOSPACE alarm.
	disarmTimeout = 10 * time.Second
	// moveLeaderTimeout bounds the hand-over before the leader's
	// defragmentation.
	moveLeaderTimeout = 30 * time.Second
	// maxStepsPerRound bounds a NOSPACE recovery's steps in one round:
	// compaction, every member, the disarm.
	maxStepsPerRound = 12
	// minTakeOver is the shortest wait for the leader's agent under NOSPACE
	// before another agent takes leadership (Policy.TakeOver is twice the
	// pace, at least this): long enough for a leader's agent that is up to
	// act, or to keep the alarm and measure again after a pace.
	minTakeOver = 30 * time.Second
)

// Node is what the maintenance job needs of its node.
type Node interface {
	node.Node
	node.Clients
	// Spec is the spec the local member runs: its peer URL finds the
	// local member in a survey.
	Spec() etcdconf.Spec
}

// Job is the maintenance job: defragmentation and NOSPACE recovery.
type Job struct {
	n Node

	// mu guards the state rounds keep between them.
	mu          sync.Mutex
	revs        Revisions
	lastDefrag  *report.Defrag // newest known, from the cluster or this agent
	unpublished bool           // lastDefrag not yet written to the cluster
	defrags     []report.Defrag
	// live is the size the latest NOSPACE defragmentation measured.
	live         Live
	noSpaceSince time.Time
	lastDisarmed time.Time
	lastKind     Kind
	// waitLeader is the leader whose agent this one has waited for under
	// NOSPACE since waitSince.
	waitLeader uint64
	waitSince  time.Time
}

// NewJob returns the maintenance job of node n.
func NewJob(n Node) *Job { return &Job{n: n} }

// Run is one maintenance round. A NOSPACE recovery goes on step after step
// within the round; a defragmentation for fragmentation does one member per
// round (the pace applies anyway). Every failure is the round's to report
// (the log, the report's errors and problems): Run returns nil.
func (j *Job) Run(ctx context.Context) error {
	cli := j.n.Local()
	if cli == nil {
		return nil // etcd not started
	}
	for range maxStepsPerRound {
		f, err := j.facts(ctx, cli)
		if err != nil {
			j.n.Logger().Debug("maintenance facts", "err", err)
			return nil
		}
		if !f.NoSpace() {
			// A defragmentation NOSPACE kept from the others.
			j.publishLastDefrag(ctx, cli)
		}
		step := Plan(f)
		j.record(f, step)
		j.timeLeaderWait(f, step)
		if !step.Act || ctx.Err() != nil {
			return nil
		}
		more := j.step(ctx, cli, f, step)
		if !more || !step.NoSpace || step.Kind == Disarm {
			return nil
		}
	}
	return nil
}

// facts gathers what Plan decides on: one survey of the cluster, the
// revisions seen, the last defragmentation and, under NOSPACE, the
// compaction and the membership lock.
func (j *Job) facts(ctx context.Context, cli *clientv3.Client) (Facts, error) {
	cfg := j.n.Config()
	s, err := cluster.Take(ctx, cli, cluster.Options{Alarms: true, Now: j.n.Now})
	if err != nil {
		return Facts{}, err
	}
	f, err := surveyFacts(s, j.n.Spec().PeerURL())
	if err != nil {
		return f, err
	}
	retention := cfg.Etcd.AutoCompactionRetention.D()
	f.Quota = int64(cfg.Etcd.QuotaBackendBytes)
	f.Policy = Policy{
		FreeRatio: cfg.Maintenance.DefragFreeRatio, FreeBytes: int64(cfg.Maintenance.DefragFreeBytes), Pace: cfg.Maintenance.DefragPace.D(),
		DisarmBelow: cfg.Maintenance.DisarmBelow, Retention: retention,
		TakeOver: max(2*cfg.Maintenance.DefragPace.D(), minTakeOver),
	}

	j.mu.Lock()
	j.revs.Add(f.Now, f.Revision, retention)
	f.CompactTarget = j.revs.Target(f.Now, retention)
	f.Live = j.live
	if j.waitLeader == f.Leader && !j.waitSince.IsZero() {
		f.LeaderWait = f.Now.Sub(j.waitSince)
	}
	j.mu.Unlock()
	j.readLastDefrag(ctx, cli)
	if last := j.last(); last != nil {
		f.LastDefrag = last.At
	}
	if f.NoSpace() {
		f.Compacted = compactedTo(ctx, cli, f.CompactTarget)
		if f.LockHeld, err = cluster.LockHeld(ctx, cli); err != nil {
			return f, err
		}
	}
	return f, nil
}

// compactedTo reports whether etcd's history is compacted at least up to
// rev: a read just below it is then refused as compacted.
func compactedTo(ctx context.Context, cli *clientv3.Client, rev int64) bool {
	if rev <= 1 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
	defer cancel()
	_, err := cli.Get(ctx, keys.LastDefrag, clientv3.WithRev(rev-1), clientv3.WithCountOnly())
	return errors.Is(err, rpctypes.ErrCompacted)
}

// timeLeaderWait times how long this agent has seen NOSPACE under the same
// leader without acting: a wait that a moment of unhealthiness interrupts
// (a slow status answer, an election) still counts, or a flapping member
// would keep the others waiting forever for a leader's agent that is gone.
func (j *Job) timeLeaderWait(f Facts, step Step) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case !f.NoSpace() || step.Act:
		j.waitLeader, j.waitSince = 0, time.Time{}
	case j.waitLeader != f.Leader || j.waitSince.IsZero():
		j.waitLeader, j.waitSince = f.Leader, f.Now
	}
}

// step carries out the round's step; false ends the round.
func (j *Job) step(ctx context.Context, cli *clientv3.Client, f Facts, step Step) bool {
	switch step.Kind {
	case Compact:
		return j.compactHistory(ctx, cli, step)
	case Disarm:
		j.disarmNoSpace(ctx, cli, step)
		return false
	case TakeLead:
		return j.takeLead(ctx, f, step)
	case Defrag:
		if step.NoSpace {
			// The lock cannot be taken under NOSPACE (a lease and a put):
			// the plan checked nobody holds it, and only the leader's
			// agent acts.
			return j.defragMember(ctx, cli, f, step)
		}
		return j.defragUnderLock(ctx, cli)
	}
	return false
}

// takeLead moves leadership to the local member: the leader's agent did not
// recover from NOSPACE (down, or its etcd runs without it), and leadership
// is the lock under NOSPACE.
func (j *Job) takeLead(ctx context.Context, f Facts, step Step) bool {
	log, rec := j.n.Logger(), j.n.Recorder()
	log.Warn("NOSPACE: taking leadership", "reason", step.Reason)
	// Only the leader hands leadership over: ask it, not the local member.
	var endpoint string
	for _, m := range f.Members {
		if m.ID == f.Leader {
			endpoint = m.Endpoint
		}
	}
	if endpoint == "" {
		log.Warn("NOSPACE: taking leadership waits: the leader's endpoint is unknown")
		return false
	}
	cli, err := j.n.Dial([]string{endpoint})
	if err != nil {
		rec.SetError(fmt.Errorf("NOSPACE: take leadership: dial the leader: %w", err))
		return false
	}
	defer cli.Close()
	if err := cluster.MoveLeader(ctx, cli, step.MoveLeaderTo, moveLeaderTimeout); err != nil {
		rec.SetError(fmt.Errorf("NOSPACE: take leadership: %w", err))
		log.Error("NOSPACE: taking leadership failed", "err", err)
		return false
	}
	rec.AddDecision(report.ActionTakeLead, step.Reason)
	j.mu.Lock()
	j.waitLeader, j.waitSince = 0, time.Time{}
	j.mu.Unlock()
	return true
}

func (j *Job) compactHistory(ctx context.Context, cli *clientv3.Client, step Step) bool {
	log, rec := j.n.Logger(), j.n.Recorder()
	cctx, cancel := context.WithTimeout(ctx, compactTimeout)
	defer cancel()
	log.Warn("NOSPACE: compacting", "revision", step.Revision)
	_, err := cli.Compact(cctx, step.Revision, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		rec.SetError(fmt.Errorf("NOSPACE compaction to revision %d: %w", step.Revision, err))
		log.Error("NOSPACE compaction failed", "revision", step.Revision, "err", err)
		return false
	}
	rec.AddDecision(report.ActionCompact, step.Reason)
	return true
}

func (j *Job) disarmNoSpace(ctx context.Context, cli *clientv3.Client, step Step) {
	log, rec := j.n.Logger(), j.n.Recorder()
	dctx, cancel := context.WithTimeout(ctx, disarmTimeout)
	defer cancel()
	for _, id := range step.Alarmed {
		// Only NOSPACE, member by member: a CORRUPT alarm is never ours to clear.
		if _, err := cli.AlarmDisarm(dctx, &clientv3.AlarmMember{MemberID: id, Alarm: pb.AlarmType_NOSPACE}); err != nil {
			rec.SetError(fmt.Errorf("disarm NOSPACE of member %x: %w", id, err))
			log.Error("disarm NOSPACE failed", "member", fmt.Sprintf("%x", id), "err", err)
			return
		}
	}
	j.mu.Lock()
	j.lastDisarmed = j.n.Now()
	j.mu.Unlock()
	rec.AddDecision(report.ActionDisarm, step.Reason)
	log.Warn("NOSPACE alarm disarmed", "reason", step.Reason)
	// Writes work again: publish a defragmentation NOSPACE kept unwritten.
	j.publishLastDefrag(ctx, cli)
	j.n.Publish()
}

// defragUnderLock takes the membership lock, surveys and plans again under
// it (members may have changed while it waited) and defragments one member.
func (j *Job) defragUnderLock(ctx context.Context, cli *clientv3.Client) bool {
	log := j.n.Logger()
	lockCli, err := j.n.Cluster()
	if err != nil {
		// A one-member cluster: no other member to hold the lock through,
		// and nobody to serialize with but this agent.
		lockCli = cli
	}
	lock, err := cluster.TakeLock(ctx, lockCli, lockWait, log)
	if err != nil {
		log.Info("defragmentation waits for the membership lock", "err", err)
		return false
	}
	defer lock.Release()
	f, err := j.facts(ctx, cli)
	if err != nil {
		log.Debug("maintenance facts", "err", err)
		return false
	}
	step := Plan(f)
	j.record(f, step)
	if step.Kind != Defrag || !step.Act {
		return false
	}
	if err := lock.Check(ctx); err != nil {
		log.Warn("defragmentation skipped", "err", err)
		return false
	}
	ok := j.defragMember(ctx, cli, f, step)
	j.publishLastDefrag(ctx, cli)
	return ok
}

// defragMember defragments step.Member, moving leadership away first when it
// leads.
func (j *Job) defragMember(ctx context.Context, cli *clientv3.Client, f Facts, step Step) bool {
	log, rep := j.n.Logger(), j.n.Recorder()
	m := step.Member
	rec := report.Defrag{Member: m.Name, By: j.n.Identity().Name, NoSpace: step.NoSpace, Reason: step.Reason, Before: m.DBSize}
	if m.ID == f.Leader && step.MoveLeaderTo != 0 {
		rec.WasLeader = true
		rec.MovedTo = f.name(step.MoveLeaderTo)
		if err := cluster.MoveLeader(ctx, cli, step.MoveLeaderTo, moveLeaderTimeout); err != nil {
			rep.SetError(fmt.Errorf("move leadership to %s before defragmenting %s: %w", rec.MovedTo, m.Name, err))
			log.Warn("defragmentation of the leader waits: leadership not moved", "to", rec.MovedTo, "err", err)
			return false
		}
		log.Info("moved leadership before defragmenting", "member", m.Name, "to", rec.MovedTo)
	} else if m.ID == f.Leader {
		rec.WasLeader = true
	}
	rep.AddDecision(report.ActionDefrag, step.Reason)
	log.Warn("defragmenting", "member", m.Name, "reason", step.Reason)
	j.n.Publish()
	begin := j.n.Now()
	dctx, cancel := context.WithTimeout(ctx, defragTimeout)
	_, err := cli.Defragment(dctx, m.Endpoint)
	cancel()
	rec.TookSeconds = j.n.Now().Sub(begin).Seconds()
	rec.At = j.n.Now().UTC().Round(0)
	if err != nil {
		rec.Error = health.ShortErr(err)
		rep.SetError(fmt.Errorf("defragment %s: %w", m.Name, err))
		log.Error("defragmentation failed", "member", m.Name, "err", err)
	} else {
		sctx, cancel := context.WithTimeout(ctx, cluster.MemberTimeout)
		if st, err := cli.Status(sctx, m.Endpoint); err == nil {
			rec.After = st.DbSize
		}
		cancel()
		rep.AddDecision(report.ActionDefragmented, fmt.Sprintf("%s: %s → %s in %.1fs%s", m.Name, Bytes(rec.Before), Bytes(rec.After), rec.TookSeconds, movedNote(rec)))
		log.Info("defragmented", "member", m.Name, "before", rec.Before, "after", rec.After, "took", rec.TookSeconds, "was_leader", rec.WasLeader)
	}
	j.mu.Lock()
	j.defrags = append(j.defrags, rec)
	if len(j.defrags) > report.MaxDefrags {
		j.defrags = slices.Delete(j.defrags, 0, len(j.defrags)-report.MaxDefrags)
	}
	j.lastDefrag, j.unpublished = &rec, true
	if err == nil && step.NoSpace && rec.After > 0 {
		j.live = Live{Member: m.Name, Size: rec.After, At: rec.At, Revision: f.Revision}
	}
	j.mu.Unlock()
	j.n.Publish()
	return err == nil
}

func movedNote(d report.Defrag) string {
	if d.MovedTo != "" {
		return ", leader (leadership moved to " + d.MovedTo + " first)"
	}
	if d.WasLeader {
		return ", leader (the only voter)"
	}
	return ""
}

// last is the newest defragmentation known.
func (j *Job) last() *report.Defrag {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastDefrag
}

// readLastDefrag adopts the cluster's record when it is newer than ours.
func (j *Job) readLastDefrag(ctx context.Context, cli *clientv3.Client) {
	ctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, keys.LastDefrag)
	if err != nil || len(resp.Kvs) == 0 {
		return
	}
	var d report.Defrag
	if err := json.Unmarshal(resp.Kvs[0].Value, &d); err != nil {
		j.n.Logger().Debug("read the last defragmentation", "err", err)
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lastDefrag == nil || d.At.After(j.lastDefrag.At) {
		j.lastDefrag, j.unpublished = &d, false
	}
}

// publishLastDefrag writes this agent's latest defragmentation for the
// others (fails harmlessly under NOSPACE; retried after the disarm).
func (j *Job) publishLastDefrag(ctx context.Context, cli *clientv3.Client) {
	j.mu.Lock()
	d, todo := j.lastDefrag, j.unpublished
	j.mu.Unlock()
	if !todo || d == nil {
		return
	}
	b, _ := json.Marshal(d)
	pctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
	defer cancel()
	if _, err := cli.Put(pctx, keys.LastDefrag, string(b)); err != nil {
		j.n.Logger().Debug("publish the last defragmentation", "err", err)
		return
	}
	j.mu.Lock()
	if j.lastDefrag == d {
		j.unpublished = false
	}
	j.mu.Unlock()
}

// record publishes the round in the report and logs a changed decision
// once.
func (j *Job) record(f Facts, step Step) {
	log, rec := j.n.Logger(), j.n.Recorder()
	m := &report.Maintenance{CheckedAt: f.Now.UTC().Round(0), Coordinator: f.Coordinator(), Next: step.Reason}
	for _, mm := range f.Members {
		m.Members = append(m.Members, report.MemberSpace{Name: mm.Name, ID: fmt.Sprintf("%x", mm.ID), Endpoint: mm.Endpoint,
			Leader: mm.ID == f.Leader, DBSize: mm.DBSize, DBSizeInUse: mm.DBInUse, Fragmentation: mm.Fragmentation(),
			Quota: mm.Quota, Error: mm.Err})
	}
	j.mu.Lock()
	if j.lastDefrag != nil {
		d := *j.lastDefrag
		m.LastDefrag = &d
	}
	m.Defrags = slices.Clone(j.defrags)
	switch {
	case !f.NoSpace():
		j.noSpaceSince = time.Time{}
		m.NoSpace = report.NoSpace{State: report.NoSpaceNone}
	case step.Kind == Keep:
		m.NoSpace = report.NoSpace{State: report.NoSpaceKept, Message: step.Reason}
	default:
		m.NoSpace = report.NoSpace{State: report.NoSpaceRecovering, Message: step.Reason}
	}
	if f.NoSpace() && j.noSpaceSince.IsZero() {
		j.noSpaceSince = f.Now.UTC().Round(0)
	}
	m.NoSpace.Since, m.NoSpace.LastDisarmed = j.noSpaceSince, j.lastDisarmed.UTC().Round(0)
	changed := step.Kind != j.lastKind
	j.lastKind = step.Kind
	j.mu.Unlock()

	rec.Update(func(r *report.NodeReport) { r.Maintenance = m })
	var ps []problem.Problem
	if m.NoSpace.State == report.NoSpaceKept {
		ps = append(ps, problem.NoSpaceKept.New("", m.NoSpace.Message))
	}
	rec.SetProblems("maintenance", ps)
	switch {
	case changed && step.Kind == Keep:
		// The operator must act: say it where they look.
		rec.AddDecision(report.ActionNoSpace, step.Reason)
		log.Error("NOSPACE alarm kept", "reason", step.Reason)
	case changed && step.Reason != "":
		log.Info("maintenance", "step", step.Kind, "reason", step.Reason)
	default:
		log.Debug("maintenance", "step", step.Kind, "reason", step.Reason)
	}
	j.n.Publish()
}
