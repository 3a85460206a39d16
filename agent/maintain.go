package agent

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

	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/maintenance"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Defragmentation and NOSPACE recovery: each maintenance round the agent
// gathers every member's database size, the alarms and the compaction state,
// asks maintenance.Plan what to do, publishes the answer in its report and,
// when its member leads, carries it out. The decisions are in package
// maintenance; this file only does the I/O.

// lastDefragKey holds the cluster's most recent defragmentation (JSON
// report.Defrag), so every agent shows it and pacing survives a change of
// coordinator. Written under the membership lock; under NOSPACE (no writes)
// it is written once the alarm is disarmed.
const lastDefragKey = "/_etcd-agent/maintenance/last-defrag"

const (
	// maintLockWait is how long the coordinator waits for the membership
	// lock before leaving the defragmentation to its next round.
	maintLockWait = 2 * time.Second
	// defragTimeout bounds one member's defragmentation (it rewrites the
	// whole database file: minutes for gigabytes).
	defragTimeout = 10 * time.Minute
	// maxStepsPerRound bounds a NOSPACE recovery's steps in one round:
	// compaction, every member, the disarm.
	maxStepsPerRound = 12
)

// maintainer is the state maintenance rounds keep between them.
type maintainer struct {
	mu          sync.Mutex
	revs        maintenance.Revisions
	lastDefrag  *report.Defrag // newest known, from the cluster or this agent
	unpublished bool           // lastDefrag not yet written to the cluster
	defrags     []report.Defrag
	// live is the size the latest NOSPACE defragmentation measured.
	live         maintenance.Live
	noSpaceSince time.Time
	lastDisarmed time.Time
	lastKind     maintenance.Kind
}

// maintain runs one maintenance round. A NOSPACE recovery goes on step after
// step within the round; a defragmentation for fragmentation does one
// member per round (the pace applies anyway).
func (a *Agent) maintain(ctx context.Context) {
	for range maxStepsPerRound {
		f, err := a.maintenanceFacts(ctx)
		if err != nil {
			a.log.Debug("maintenance facts", "err", err)
			return
		}
		if !f.NoSpace() {
			// A defragmentation NOSPACE kept from the others.
			a.publishLastDefrag(ctx)
		}
		step := maintenance.Plan(f)
		a.recordMaintenance(f, step)
		if !step.Act || ctx.Err() != nil {
			return
		}
		more := a.maintenanceStep(ctx, f, step)
		if !more || !step.NoSpace || step.Kind == maintenance.Disarm {
			return
		}
	}
}

// maintenanceFacts gathers what maintenance.Plan decides on.
func (a *Agent) maintenanceFacts(ctx context.Context) (maintenance.Facts, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg := a.cfg.Maintenance
	retention := a.cfg.Etcd.AutoCompactionRetention.D()
	f := maintenance.Facts{Now: a.now(), Quota: int64(a.cfg.Etcd.QuotaBackendBytes), Policy: maintenance.Policy{
		FreeRatio: cfg.DefragFreeRatio, FreeBytes: int64(cfg.DefragFreeBytes), Pace: cfg.DefragPace.D(),
		DisarmBelow: cfg.DisarmBelow, Retention: retention,
	}}
	st, err := a.client.Status(ctx, a.spec.ClientURL())
	if err != nil {
		return f, fmt.Errorf("local member status: %w", err)
	}
	f.Self, f.Leader, f.Revision = st.Header.GetMemberId(), st.Leader, st.Header.GetRevision()
	list, err := a.client.MemberList(ctx)
	if err != nil {
		return f, fmt.Errorf("member list: %w", err)
	}
	alarms, err := a.client.AlarmList(ctx)
	if err != nil {
		return f, fmt.Errorf("alarm list: %w", err)
	}
	f.Members = make([]maintenance.Member, len(list.Members))
	var wg sync.WaitGroup
	for i, m := range list.Members {
		f.Members[i] = maintenance.Member{ID: m.ID, Name: m.Name, Learner: m.IsLearner}
		for _, al := range alarms.Alarms {
			if al.MemberID == m.ID {
				f.Members[i].Alarms = append(f.Members[i].Alarms, al.Alarm.String())
			}
		}
		if len(m.ClientURLs) == 0 {
			f.Members[i].Err = "no client URL (not started yet)"
			continue
		}
		f.Members[i].Endpoint = m.ClientURLs[0]
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
			defer cancel()
			s, err := a.client.Status(sctx, f.Members[i].Endpoint)
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				f.Members[i].Err = fmt.Sprintf("no answer within %s", memberProbeTimeout)
				return
			case err != nil:
				f.Members[i].Err = health.ShortErr(err)
				return
			}
			mm := &f.Members[i]
			mm.Leader, mm.RaftIndex, mm.AppliedIndex = s.Leader, s.RaftIndex, s.RaftAppliedIndex
			mm.DBSize, mm.DBInUse, mm.Quota = s.DbSize, s.DbSizeInUse, s.DbSizeQuota
		})
	}
	wg.Wait()

	a.maint.mu.Lock()
	a.maint.revs.Add(f.Now, st.Header.GetRevision(), retention)
	f.CompactTarget = a.maint.revs.Target(f.Now, retention)
	f.Live = a.maint.live
	a.maint.mu.Unlock()
	a.readLastDefrag(ctx)
	if last := a.lastDefrag(); last != nil {
		f.LastDefrag = last.At
	}
	if f.NoSpace() {
		f.Compacted = a.compactedTo(ctx, f.CompactTarget)
		held, err := a.client.Get(ctx, membershipLockKey, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return f, fmt.Errorf("read the membership lock: %w", err)
		}
		f.LockHeld = held.Count > 0
	}
	return f, nil
}

// compactedTo reports whether etcd's history is compacted at least up to
// rev: a read just below it is then refused as compacted.
func (a *Agent) compactedTo(ctx context.Context, rev int64) bool {
	if rev <= 1 {
		return true
	}
	_, err := a.client.Get(ctx, lastDefragKey, clientv3.WithRev(rev-1), clientv3.WithCountOnly())
	return errors.Is(err, rpctypes.ErrCompacted)
}

// maintenanceStep carries out the coordinator's step; false ends the round.
func (a *Agent) maintenanceStep(ctx context.Context, f maintenance.Facts, step maintenance.Step) bool {
	switch step.Kind {
	case maintenance.Compact:
		return a.compactHistory(ctx, step)
	case maintenance.Disarm:
		a.disarmNoSpace(ctx, step)
		return false
	case maintenance.Defrag:
		if step.NoSpace {
			// The lock cannot be taken under NOSPACE (a lease and a put):
			// the plan checked nobody holds it, and only the leader's
			// agent acts.
			return a.defragMember(ctx, f, step)
		}
		return a.defragUnderLock(ctx)
	}
	return false
}

func (a *Agent) compactHistory(ctx context.Context, step maintenance.Step) bool {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	a.log.Warn("NOSPACE: compacting", "revision", step.Revision)
	_, err := a.client.Compact(cctx, step.Revision, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		a.rec.SetError(fmt.Errorf("NOSPACE compaction to revision %d: %w", step.Revision, err))
		a.log.Error("NOSPACE compaction failed", "revision", step.Revision, "err", err)
		return false
	}
	a.rec.AddDecision(report.ActionCompact, step.Reason)
	return true
}

func (a *Agent) disarmNoSpace(ctx context.Context, step maintenance.Step) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, id := range step.Alarmed {
		// Only NOSPACE, member by member: a CORRUPT alarm is never ours to clear.
		if _, err := a.client.AlarmDisarm(dctx, &clientv3.AlarmMember{MemberID: id, Alarm: pb.AlarmType_NOSPACE}); err != nil {
			a.rec.SetError(fmt.Errorf("disarm NOSPACE of member %x: %w", id, err))
			a.log.Error("disarm NOSPACE failed", "member", fmt.Sprintf("%x", id), "err", err)
			return
		}
	}
	a.maint.mu.Lock()
	a.maint.lastDisarmed = a.now()
	a.maint.mu.Unlock()
	a.rec.AddDecision(report.ActionDisarm, step.Reason)
	a.log.Warn("NOSPACE alarm disarmed", "reason", step.Reason)
	// Writes work again: publish a defragmentation NOSPACE kept unwritten.
	a.publishLastDefrag(ctx)
	a.flush()
}

// defragUnderLock takes the membership lock, plans again under it (members
// may have changed while it waited) and defragments one member.
func (a *Agent) defragUnderLock(ctx context.Context) bool {
	cli, err := a.clusterClient()
	if err != nil {
		// A one-member cluster: no other member to hold the lock through,
		// and nobody to serialize with but this agent.
		cli = a.client
	}
	lock, err := lockMembership(ctx, cli, maintLockWait)
	if err != nil {
		a.log.Info("defragmentation waits for the membership lock", "err", err)
		return false
	}
	defer lock.release(a.log)
	f, err := a.maintenanceFacts(ctx)
	if err != nil {
		a.log.Debug("maintenance facts", "err", err)
		return false
	}
	step := maintenance.Plan(f)
	a.recordMaintenance(f, step)
	if step.Kind != maintenance.Defrag || !step.Act {
		return false
	}
	if err := lock.check(ctx); err != nil {
		a.log.Warn("defragmentation skipped", "err", err)
		return false
	}
	ok := a.defragMember(ctx, f, step)
	a.publishLastDefrag(ctx)
	return ok
}

// defragMember defragments step.Member, moving leadership away first when it
// leads.
func (a *Agent) defragMember(ctx context.Context, f maintenance.Facts, step maintenance.Step) bool {
	m := step.Member
	rec := report.Defrag{Member: m.Name, By: a.id.Name, NoSpace: step.NoSpace, Reason: step.Reason, Before: m.DBSize}
	if m.ID == f.Leader && step.MoveLeaderTo != 0 {
		rec.WasLeader = true
		rec.MovedTo = memberName(f, step.MoveLeaderTo)
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := a.client.MoveLeader(mctx, step.MoveLeaderTo)
		cancel()
		if err != nil {
			a.rec.SetError(fmt.Errorf("move leadership to %s before defragmenting %s: %w", rec.MovedTo, m.Name, err))
			a.log.Warn("defragmentation of the leader waits: leadership not moved", "to", rec.MovedTo, "err", err)
			return false
		}
		a.log.Info("moved leadership before defragmenting", "member", m.Name, "to", rec.MovedTo)
	} else if m.ID == f.Leader {
		rec.WasLeader = true
	}
	a.rec.AddDecision(report.ActionDefrag, step.Reason)
	a.log.Warn("defragmenting", "member", m.Name, "reason", step.Reason)
	a.flush()
	begin := a.now()
	dctx, cancel := context.WithTimeout(ctx, defragTimeout)
	_, err := a.client.Defragment(dctx, m.Endpoint)
	cancel()
	rec.TookSeconds = a.now().Sub(begin).Seconds()
	rec.At = a.now().UTC().Round(0)
	if err != nil {
		rec.Error = health.ShortErr(err)
		a.rec.SetError(fmt.Errorf("defragment %s: %w", m.Name, err))
		a.log.Error("defragmentation failed", "member", m.Name, "err", err)
	} else {
		sctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
		if st, err := a.client.Status(sctx, m.Endpoint); err == nil {
			rec.After = st.DbSize
		}
		cancel()
		a.rec.AddDecision(report.ActionDefragmented, fmt.Sprintf("%s: %s → %s in %.1fs%s", m.Name, maintenance.Bytes(rec.Before), maintenance.Bytes(rec.After), rec.TookSeconds, movedNote(rec)))
		a.log.Info("defragmented", "member", m.Name, "before", rec.Before, "after", rec.After, "took", rec.TookSeconds, "was_leader", rec.WasLeader)
	}
	a.maint.mu.Lock()
	a.maint.defrags = append(a.maint.defrags, rec)
	if len(a.maint.defrags) > report.MaxDefrags {
		a.maint.defrags = slices.Delete(a.maint.defrags, 0, len(a.maint.defrags)-report.MaxDefrags)
	}
	a.maint.lastDefrag, a.maint.unpublished = &rec, true
	if err == nil && step.NoSpace && rec.After > 0 {
		a.maint.live = maintenance.Live{Member: m.Name, Size: rec.After, At: rec.At, Revision: f.Revision}
	}
	a.maint.mu.Unlock()
	a.flush()
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

func memberName(f maintenance.Facts, id uint64) string {
	for _, m := range f.Members {
		if m.ID == id && m.Name != "" {
			return m.Name
		}
	}
	return fmt.Sprintf("%x", id)
}

func (a *Agent) lastDefrag() *report.Defrag {
	a.maint.mu.Lock()
	defer a.maint.mu.Unlock()
	return a.maint.lastDefrag
}

// readLastDefrag adopts the cluster's record when it is newer than ours.
func (a *Agent) readLastDefrag(ctx context.Context) {
	resp, err := a.client.Get(ctx, lastDefragKey)
	if err != nil || len(resp.Kvs) == 0 {
		return
	}
	var d report.Defrag
	if err := json.Unmarshal(resp.Kvs[0].Value, &d); err != nil {
		a.log.Debug("read the last defragmentation", "err", err)
		return
	}
	a.maint.mu.Lock()
	defer a.maint.mu.Unlock()
	if a.maint.lastDefrag == nil || d.At.After(a.maint.lastDefrag.At) {
		a.maint.lastDefrag, a.maint.unpublished = &d, false
	}
}

// publishLastDefrag writes this agent's latest defragmentation for the
// others (fails harmlessly under NOSPACE; retried after the disarm).
func (a *Agent) publishLastDefrag(ctx context.Context) {
	a.maint.mu.Lock()
	d, todo := a.maint.lastDefrag, a.maint.unpublished
	a.maint.mu.Unlock()
	if !todo || d == nil {
		return
	}
	b, _ := json.Marshal(d)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := a.client.Put(pctx, lastDefragKey, string(b)); err != nil {
		a.log.Debug("publish the last defragmentation", "err", err)
		return
	}
	a.maint.mu.Lock()
	if a.maint.lastDefrag == d {
		a.maint.unpublished = false
	}
	a.maint.mu.Unlock()
}

// recordMaintenance publishes the round in the report and logs a changed
// decision once.
func (a *Agent) recordMaintenance(f maintenance.Facts, step maintenance.Step) {
	m := &report.Maintenance{CheckedAt: f.Now.UTC().Round(0), Coordinator: f.Coordinator(), Next: step.Reason}
	for _, mm := range f.Members {
		m.Members = append(m.Members, report.MemberSpace{Name: mm.Name, ID: fmt.Sprintf("%x", mm.ID), Endpoint: mm.Endpoint,
			Leader: mm.ID == f.Leader, DBSize: mm.DBSize, DBSizeInUse: mm.DBInUse, Fragmentation: mm.Fragmentation(),
			Quota: mm.Quota, Error: mm.Err})
	}
	a.maint.mu.Lock()
	if a.maint.lastDefrag != nil {
		d := *a.maint.lastDefrag
		m.LastDefrag = &d
	}
	m.Defrags = slices.Clone(a.maint.defrags)
	switch {
	case !f.NoSpace():
		a.maint.noSpaceSince = time.Time{}
		m.NoSpace = report.NoSpace{State: report.NoSpaceNone}
	case step.Kind == maintenance.Keep:
		m.NoSpace = report.NoSpace{State: report.NoSpaceKept, Message: step.Reason}
	default:
		m.NoSpace = report.NoSpace{State: report.NoSpaceRecovering, Message: step.Reason}
	}
	if f.NoSpace() && a.maint.noSpaceSince.IsZero() {
		a.maint.noSpaceSince = f.Now.UTC().Round(0)
	}
	m.NoSpace.Since, m.NoSpace.LastDisarmed = a.maint.noSpaceSince, a.maint.lastDisarmed.UTC().Round(0)
	changed := step.Kind != a.maint.lastKind
	a.maint.lastKind = step.Kind
	a.maint.mu.Unlock()

	a.rec.Update(func(r *report.NodeReport) { r.Maintenance = m })
	var ps []problem.Problem
	if m.NoSpace.State == report.NoSpaceKept {
		ps = append(ps, problem.NoSpaceKept.New("", m.NoSpace.Message))
	}
	a.rec.SetProblems("maintenance", ps)
	switch {
	case changed && step.Kind == maintenance.Keep:
		// The operator must act: say it where they look.
		a.rec.AddDecision(report.ActionNoSpace, step.Reason)
		a.log.Error("NOSPACE alarm kept", "reason", step.Reason)
	case changed && step.Reason != "":
		a.log.Info("maintenance", "step", step.Kind, "reason", step.Reason)
	default:
		a.log.Debug("maintenance", "step", step.Kind, "reason", step.Reason)
	}
	a.flush()
}
