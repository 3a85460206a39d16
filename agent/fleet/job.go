package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// Node is what the job needs of the agent.
type Node interface {
	Logger() *slog.Logger
	Now() time.Time
	// Survey finds this node's member (0: none) in a fresh survey.
	Survey(ctx context.Context) (selfID uint64, members []membership.ClusterMember, err error)
	// Ready: the local member is a healthy, caught-up voter (READY=1 was
	// sent); Standby: the node waits outside a full, healthy cluster.
	Ready() bool
	Standby() bool
	// LeaveState reads the leave marker.
	LeaveState() (left, leaving bool)
	// Leave removes this member as `etcd-agent leave` does; guard (nil:
	// none) is checked under the membership lock alongside the quorum, and
	// its refusal is a *membership.DeferredError.
	Leave(ctx context.Context, guard membership.LeaveGuard, progress func(string)) error
	// Departed is the error that ends the agent's pass once the node left.
	Departed() error
	// SetProblems publishes the job's current problems (status, STATUS=,
	// metrics).
	SetProblems(ps []problem.Problem)
	// Cluster is a client to the cluster (for the seat offer).
	Cluster() (*clientv3.Client, error)
}

// Settings are the job's configuration (config.Fleet, resolved).
type Settings struct {
	// LaunchHook and TerminateHook name the group's hooks ("": none).
	LaunchHook, TerminateHook string
	// HeartbeatEvery is the pause between two heartbeats of a hook.
	HeartbeatEvery time.Duration
	// NewHooks builds the Auto Scaling client once the instance ID is
	// known; nil when no hook is configured.
	NewHooks func(ctx context.Context, instanceID string) (Hooks, error)
	// DesiredSize is cluster.size; ReplacementWait how long a voter the
	// group terminates offers its seat before it leaves without a
	// replacement (0: no make-before-break).
	DesiredSize     int
	ReplacementWait time.Duration
}

// seatTTL is the lease of a seat offer: renewed each round, gone soon
// after its agent.
const seatTTL = 30 * time.Second

// maxRoundBackoff caps the pause after rounds in which IMDS did not
// answer at all: a spot notice gives two minutes.
const maxRoundBackoff = 30 * time.Second

// Job is the fleet job: one Run per round of the job table.
type Job struct {
	n   Node
	imd MetadataReader
	s   Settings

	mu            sync.Mutex
	hooks         Hooks
	launchDone    bool
	terminateDone bool
	beat          map[string]time.Time // last heartbeat per hook
	hookProblems  map[string]problem.Problem
	skipUntil     time.Time
	b             backoff.Backoff
	// terminatedSince is when the Terminated notice was first seen.
	terminatedSince time.Time
	seatLease       clientv3.LeaseID
	seatProblem     *problem.Problem
}

// NewJob returns the job; imd reads this instance's metadata.
func NewJob(n Node, imd MetadataReader, s Settings) *Job {
	if s.HeartbeatEvery <= 0 {
		s.HeartbeatEvery = time.Minute
	}
	return &Job{n: n, imd: imd, s: s, beat: map[string]time.Time{}, hookProblems: map[string]problem.Problem{},
		b: backoff.Backoff{Min: time.Second, Max: maxRoundBackoff}}
}

// Run is one round: read the notices, decide, act, publish. It ends the
// pass (Node.Departed) once the node left on a notice.
func (j *Job) Run(ctx context.Context) error {
	now := j.n.Now()
	j.mu.Lock()
	skip := now.Before(j.skipUntil)
	j.mu.Unlock()
	if skip {
		return nil
	}
	obs := Observe(ctx, j.imd)
	if len(obs.Errors) == 4 {
		// IMDS did not answer at all: back off (capped) before the next try.
		d := j.b.Next()
		j.mu.Lock()
		j.skipUntil = now.Add(d)
		j.mu.Unlock()
		j.n.Logger().Warn("IMDS notices unreadable, retrying", "retry_in", d, "err", errors.Join(mapErrs(obs.Errors)...))
	} else {
		j.b.Reset()
	}
	f := j.facts(ctx, obs)
	plan := Decide(f)
	j.hookSteps(ctx, plan)
	if plan.OfferSeat {
		j.offerSeat(ctx, f.SelfID)
	}
	if plan.Leave {
		j.n.Logger().Warn("leaving the cluster on an EC2 notice", "notice", f.Notice.Kind, "detail", f.Notice.Detail)
		j.publish(obs, f, plan, nil)
		if err := j.leave(ctx, f, plan); err != nil {
			var d *membership.DeferredError
			if errors.As(err, &d) {
				// Under the lock the make-before-break condition no longer
				// held (another member terminated at the same time left
				// first): not an error, a wait. Offer the seat again, for a
				// whole new replacementWait (a window that ran out meanwhile
				// would have the next round leave on the quorum rule alone,
				// with no replacement); the terminate hook is heartbeated
				// each round meanwhile.
				j.mu.Lock()
				j.terminatedSince = j.n.Now()
				j.mu.Unlock()
				plan.Leave, plan.OfferSeat = false, true
				plan.Waiting = "leave deferred under the membership lock: " + d.Err.Error() + "; seat offered again, this member leaves once a replacement is a voter"
				j.n.Logger().Info("leave on an EC2 notice deferred: offering the seat again (make-before-break)", "reason", d.Err)
				j.offerSeat(ctx, f.SelfID)
				j.publish(obs, f, plan, nil)
				return nil
			}
			j.publish(obs, f, plan, err)
			j.n.Logger().Warn("leave on an EC2 notice failed; retrying next round", "err", err)
			return nil
		}
		// The member is gone: complete the terminate hook now, before the
		// pass ends (a CONTINUE lets the group terminate the instance).
		f.Left, f.Leaving = true, false
		j.hookSteps(context.WithoutCancel(ctx), Decide(f))
		return j.n.Departed()
	}
	j.publish(obs, f, plan, nil)
	if f.Left {
		return j.n.Departed()
	}
	return nil
}

func mapErrs(m map[string]error) []error {
	var out []error
	for _, e := range m {
		out = append(out, e)
	}
	return out
}

// facts gathers what Decide needs; the cluster is surveyed only when there
// is something to decide about it.
func (j *Job) facts(ctx context.Context, obs Observation) Facts {
	j.mu.Lock()
	f := Facts{
		Notice:        NoticeOf(obs),
		LaunchHook:    j.s.LaunchHook != "" && !j.launchDone,
		TerminateHook: j.s.TerminateHook != "" && !j.terminateDone,
		DesiredSize:   j.s.DesiredSize,
	}
	if f.Notice.Kind == NoticeTerminate {
		if j.terminatedSince.IsZero() {
			j.terminatedSince = j.n.Now()
		}
		f.ReplacementWindow = j.s.ReplacementWait > 0 && j.n.Now().Sub(j.terminatedSince) < j.s.ReplacementWait
	}
	if j.s.ReplacementWait <= 0 {
		f.DesiredSize = 0 // no make-before-break
	}
	j.mu.Unlock()
	f.Left, f.Leaving = j.n.LeaveState()
	f.Ready, f.Standby = j.n.Ready(), j.n.Standby()
	if f.Notice.Kind != NoticeNone && !f.Left && !f.Leaving {
		id, ms, err := j.n.Survey(ctx)
		if err != nil {
			f.SurveyError = err.Error()
		} else {
			f.Surveyed, f.SelfID, f.Members = true, id, ms
		}
	}
	return f
}

// leave runs the removal, heartbeating the terminate hook all along (a
// snapshot of a large database may outlast the hook's heartbeat timeout).
// A plan with KeepVoters has the membership lock's survey check it.
func (j *Job) leave(ctx context.Context, f Facts, p Plan) error {
	beatCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if f.TerminateHook && f.Notice.Kind == NoticeTerminate {
		wg.Go(func() {
			t := time.NewTicker(j.s.HeartbeatEvery)
			defer t.Stop()
			for {
				select {
				case <-beatCtx.Done():
					return
				case <-t.C:
					j.call(beatCtx, j.s.TerminateHook, HookHeartbeat, true)
				}
			}
		})
	}
	var guard membership.LeaveGuard
	if p.KeepVoters > 0 {
		guard = membership.KeepVoters(p.KeepVoters)
	}
	err := j.n.Leave(ctx, guard, func(msg string) { j.n.Logger().Info("leave", "step", msg) })
	stop()
	wg.Wait()
	return err
}

// hookSteps carries out the plan's hook steps.
func (j *Job) hookSteps(ctx context.Context, p Plan) {
	if p.Launch != HookWait {
		j.call(ctx, j.s.LaunchHook, p.Launch, false)
	}
	if p.Terminate != HookWait {
		j.call(ctx, j.s.TerminateHook, p.Terminate, false)
	}
}

// call heartbeats (at most every HeartbeatEvery, unless forced) or
// completes a hook, and records the outcome for status.
func (j *Job) call(ctx context.Context, hook string, step HookStep, force bool) {
	now := j.n.Now()
	j.mu.Lock()
	last, beaten := j.beat[hook]
	j.mu.Unlock()
	if step == HookHeartbeat && !force && beaten && now.Sub(last) < j.s.HeartbeatEvery {
		return
	}
	h, err := j.client(ctx)
	if err == nil {
		if step == HookContinue {
			err = h.Complete(ctx, hook, ResultContinue)
		} else {
			err = h.Heartbeat(ctx, hook)
		}
	}
	var he *HookError
	noAction := errors.As(err, &he) && he.Kind == HookNoAction
	j.mu.Lock()
	defer j.mu.Unlock()
	if step == HookHeartbeat {
		j.beat[hook] = now
	}
	switch {
	case err == nil || noAction:
		delete(j.hookProblems, hook)
		if step == HookContinue || noAction {
			// Done, or nothing pending: this agent will not call it again.
			if hook == j.s.LaunchHook {
				j.launchDone = true
			}
			if hook == j.s.TerminateHook && step == HookContinue {
				j.terminateDone = true
			}
		}
		if err != nil {
			j.n.Logger().Info("lifecycle hook has no pending action", "hook", hook, "err", err)
		} else {
			j.n.Logger().Info("lifecycle hook", "hook", hook, "step", step)
		}
	default:
		p := problem.LifecycleHookFailed.Newf(hook, "%s of hook %s failed: %v", step, hook, err)
		if he != nil {
			p = p.WithFix(he.Fix())
		}
		j.hookProblems[hook] = p
		j.n.Logger().Warn("lifecycle hook call failed", "hook", hook, "step", step, "err", err)
	}
}

// client builds the Auto Scaling client once the instance ID is read.
func (j *Job) client(ctx context.Context) (Hooks, error) {
	j.mu.Lock()
	h := j.hooks
	j.mu.Unlock()
	if h != nil {
		return h, nil
	}
	if j.s.NewHooks == nil {
		return nil, errors.New("no Auto Scaling client configured")
	}
	id, ok, err := j.imd.Get(ctx, PathInstanceID)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the instance ID from IMDS: %w", err)
	case !ok || id == "":
		return nil, errors.New("IMDS has no instance-id")
	}
	h, err = j.s.NewHooks(ctx, id)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	j.hooks = h
	j.mu.Unlock()
	return h, nil
}

// publish sets the job's problems from this round.
func (j *Job) publish(obs Observation, f Facts, p Plan, leaveErr error) {
	var ps []problem.Problem
	for path, err := range obs.Errors {
		ps = append(ps, problem.NoticesUnreadable.Newf(path, "%v", err))
	}
	switch {
	case leaveErr != nil:
		ps = append(ps, problem.InstanceStays.Newf(string(f.Notice.Kind), "%s; the leave failed: %v (retried each round)", f.Notice.Detail, leaveErr))
	case p.Leave:
		ps = append(ps, problem.InstanceLeaving.Newf(string(f.Notice.Kind), "%s: leaving the cluster", f.Notice.Detail))
	case p.Stay != "":
		ps = append(ps, problem.InstanceStays.Newf(string(f.Notice.Kind), "%s; the member stays: %s", f.Notice.Detail, p.Stay))
	case p.Waiting != "":
		ps = append(ps, problem.InstanceLeaving.Newf(string(f.Notice.Kind), "%s: %s", f.Notice.Detail, p.Waiting))
	}
	for _, e := range obs.Scheduled {
		if e.State == "completed" || e.State == "canceled" {
			continue
		}
		ps = append(ps, problem.MaintenanceScheduled.Newf(e.EventID, "%s (%s, %s): not before %s, not after %s", e.Code, e.Description, e.State, e.NotBefore, e.NotAfter))
	}
	j.mu.Lock()
	if j.s.TerminateHook != "" && !obs.HasLifecycleState && obs.Errors[PathLifecycleState] == nil {
		ps = append(ps, problem.LifecycleStateMissing.New(PathLifecycleState, "IMDS has no "+PathLifecycleState))
	}
	if f.LaunchHook && !j.launchDone && !f.Ready && !f.Standby {
		ps = append(ps, problem.LifecycleHookWaiting.New(j.s.LaunchHook, "launch hook "+j.s.LaunchHook+" waits for this member to be ready"))
	}
	for _, hp := range j.hookProblems {
		ps = append(ps, hp)
	}
	if j.seatProblem != nil && p.OfferSeat {
		ps = append(ps, *j.seatProblem)
	}
	j.mu.Unlock()
	j.n.SetProblems(ps)
}

// Abandon completes the launch hook with ABANDON: the node cannot serve
// (a configuration error), so the group should replace it rather than
// wait for the hook's timeout.
func Abandon(ctx context.Context, imd MetadataReader, hook string, newHooks func(ctx context.Context, instanceID string) (Hooks, error)) error {
	id, ok, err := imd.Get(ctx, PathInstanceID)
	if err != nil {
		return fmt.Errorf("read the instance ID from IMDS: %w", err)
	}
	if !ok {
		return errors.New("IMDS has no instance-id")
	}
	h, err := newHooks(ctx, id)
	if err != nil {
		return err
	}
	return h.Complete(ctx, hook, ResultAbandon)
}

// offerSeat writes (or renews) this member's seat offer, so that a standby
// joins beyond cluster.size to replace it (membership.PlanJoin).
func (j *Job) offerSeat(ctx context.Context, id uint64) {
	cli, err := j.n.Cluster()
	if err == nil {
		j.mu.Lock()
		lease := j.seatLease
		j.mu.Unlock()
		lease, err = cluster.OfferSeat(ctx, cli, id, lease, seatTTL, "terminating: waiting for a replacement since "+j.terminatedSince.UTC().Format(time.RFC3339))
		j.mu.Lock()
		j.seatLease = lease
		j.mu.Unlock()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		p := problem.SeatOfferFailed.Newf("seat-offer", "cannot offer this member's seat to a replacement: %v", err)
		j.seatProblem = &p
		j.n.Logger().Warn("offer seat", "err", err)
		return
	}
	j.seatProblem = nil
}
