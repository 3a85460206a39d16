package fleetlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// Timing.
const (
	// SweepInterval is how often every agent reads the slots (for status)
	// and frees a gone holder's.
	SweepInterval = 2 * time.Second
	// lockWait is how long a pre-reboot waits for the membership lock
	// before it is refused (Zincati asks again later).
	lockWait = 5 * time.Second
	// answerTimeout bounds one FleetLock request (the snapshot before a
	// grant included).
	answerTimeout = 3 * time.Minute
	// moveLeaderTimeout bounds the hand-over before a grant.
	moveLeaderTimeout = 10 * time.Second
)

// Node is what the FleetLock job needs of its node.
type Node interface {
	node.Node
	node.Clients
	node.Etcd
	// SnapshotBeforeChange takes the snapshot the agent takes before every
	// membership change; it never fails the caller.
	SnapshotBeforeChange(ctx context.Context, cli *clientv3.Client, change string)
}

// Job answers the node's Zincati (Locker) and frees gone holders' slots
// (Run, a row of the job table).
type Job struct {
	n Node
	// mu serializes this node's requests: one answer at a time.
	mu sync.Mutex

	downMu sync.Mutex
	// downSince is when this agent first saw each holder's member (hex ID)
	// down, by its own probes.
	downSince map[string]time.Time
}

// NewJob returns the job for n.
func NewJob(n Node) *Job { return &Job{n: n, downSince: map[string]time.Time{}} }

var _ Locker = (*Job)(nil)

// clusterClient reaches the cluster: the other members, or the local one in
// a cluster of one.
func (j *Job) clusterClient() (*clientv3.Client, error) {
	if cli, err := j.n.Cluster(); err == nil {
		return cli, nil
	}
	if cli := j.n.Local(); cli != nil {
		return cli, nil
	}
	return nil, errors.New("etcd is not started yet")
}

// PreReboot implements Locker: under the membership lock, on a fresh
// survey, it decides (PreReboot), takes a slot by a transaction, moves
// leadership away and takes the snapshot, then grants.
func (j *Job) PreReboot(ctx context.Context, c Client) Decision {
	j.mu.Lock()
	defer j.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	d := j.preReboot(ctx, c)
	j.answered("pre-reboot", c, d)
	return d
}

func (j *Job) preReboot(ctx context.Context, c Client) Decision {
	n, log := j.n, j.n.Logger()
	if n.Local() == nil {
		return refuse(KindEtcdNotReady, "the local etcd member is not started yet")
	}
	cli, err := j.clusterClient()
	if err != nil {
		return refuse(KindUnavailable, "%v", err)
	}
	holders, err := Read(ctx, cli)
	if err != nil {
		return refuse(KindUnavailable, "%v", err)
	}
	if h, ok := HeldBy(holders, c.ID); ok {
		// Zincati asks again after a reboot that did not happen: leadership
		// may have come back.
		j.moveLeadership(ctx, cli)
		return PreReboot(Facts{Client: c, Holders: []Holder{h}})
	}
	f := Facts{Client: c, Size: n.Config().Cluster.Size, Slots: n.Config().FleetLock.SlotsFor(c.Group),
		Window: WindowOf(n.Config().FleetLock.MaintenanceWindow), Now: n.Now()}
	if d, ok := OutsideWindow(f.Window, f.Now); ok {
		return d // before the membership lock: nothing to survey
	}
	lock, err := cluster.TakeLock(ctx, cli, lockWait, log)
	if err != nil {
		if ctx.Err() != nil {
			return refuse(KindUnavailable, "cancelled: %v", ctx.Err())
		}
		f.LockHolder = cluster.ShortErr(err)
		return PreReboot(f)
	}
	defer lock.Release()
	f.LockTaken = true
	if f.Holders, err = Read(ctx, cli); err != nil {
		return refuse(KindUnavailable, "%v", err)
	}
	s, err := cluster.Take(ctx, cli, cluster.Options{Alarms: true, Now: n.Now})
	if err != nil {
		return refuse(KindUnavailable, "survey the cluster: %v", err)
	}
	self, ok := s.ByPeerURL(n.Spec().PeerURL())
	if ok {
		f.Self = self.ID
	}
	f.Members = Members(s)
	for _, a := range s.Alarms {
		f.Alarms = append(f.Alarms, fmt.Sprintf("%s on %s", a.Type, s.Name(a.MemberID)))
	}
	if s.AlarmsErr != nil {
		f.AlarmsErr = cluster.ShortErr(s.AlarmsErr)
	}
	if f.Recovery, err = recoveryInProgress(ctx, cli); err != nil {
		return refuse(KindUnavailable, "%v", err)
	}
	d := PreReboot(f)
	if !d.Grant {
		return d
	}
	if err := lock.Check(ctx); err != nil {
		return refuse(KindChange, "%v", err)
	}
	h, err := Take(ctx, cli, Holder{ID: c.ID, Group: c.Group, Member: self.Name, MemberID: fmt.Sprintf("%x", self.ID),
		PeerURL: n.Spec().PeerURL(), Since: n.Now().UTC()}, f.Slots, f.Holders)
	if err != nil {
		if errors.Is(err, ErrSlotChanged) {
			return refuse(KindSlotChanged, "%v", err)
		}
		return refuse(KindUnavailable, "%v", err)
	}
	if s.Leader() == self.ID {
		to, err := j.handOver(ctx, s, self.ID)
		if err != nil {
			if ferr := Free(ctx, cli, h); ferr != nil {
				log.Warn("give back the reboot slot after a failed hand-over", "err", ferr)
			}
			return refuse(KindLeaderMove, "this member leads and leadership could not be moved away before the reboot: %v", err)
		}
		d.Reason += "; leadership moved to " + to + " first"
	}
	n.SnapshotBeforeChange(ctx, cli, fmt.Sprintf("reboot of %s (FleetLock %s, group %s)", self.Name, c.ID, c.Group))
	d.Reason = fmt.Sprintf("slot %d of group %q: %s", h.Slot, h.Group, d.Reason)
	n.Recorder().AddDecision(report.ActionRebootGranted, fmt.Sprintf("%s (group %s) may reboot: %s", c.ID, c.Group, d.Reason))
	log.Warn("reboot granted", "id", c.ID, "group", c.Group, "slot", h.Slot, "reason", d.Reason)
	j.publishHolders(append(slices.Clone(f.Holders), h), nil)
	return d
}

// handOver moves leadership from the local member to the healthy, caught-up
// voter with the lowest ID; it returns that voter's name.
func (j *Job) handOver(ctx context.Context, s cluster.Survey, self uint64) (string, error) {
	var to uint64
	for _, m := range s.Voters() {
		if m.ID != self && s.CaughtUp(m) && (to == 0 || m.ID < to) {
			to = m.ID
		}
	}
	if to == 0 {
		return "", errors.New("no other healthy, caught-up voter")
	}
	if err := cluster.MoveLeader(ctx, j.n.Local(), to, moveLeaderTimeout); err != nil {
		return "", fmt.Errorf("move leadership to %s: %w", s.Name(to), err)
	}
	j.n.Logger().Info("moved leadership before the reboot", "to", s.Name(to))
	return s.Name(to), nil
}

// moveLeadership hands leadership over when the local member leads (a
// holder asking again), best effort.
func (j *Job) moveLeadership(ctx context.Context, cli *clientv3.Client) {
	s, err := cluster.Take(ctx, cli, cluster.Options{Now: j.n.Now})
	if err != nil {
		return
	}
	if self, ok := s.ByPeerURL(j.n.Spec().PeerURL()); ok && s.Leader() == self.ID {
		if _, err := j.handOver(ctx, s, self.ID); err != nil {
			j.n.Logger().Warn("move leadership before the reboot", "err", err)
		}
	}
}

// SteadyState implements Locker: the slot is freed (by a transaction) once
// the local member is a healthy, caught-up voter again.
func (j *Job) SteadyState(ctx context.Context, c Client) Decision {
	j.mu.Lock()
	defer j.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	d := j.steadyState(ctx, c)
	j.answered("steady-state", c, d)
	return d
}

func (j *Job) steadyState(ctx context.Context, c Client) Decision {
	n := j.n
	if n.Local() == nil {
		return refuse(KindEtcdNotReady, "the local etcd member is not started yet")
	}
	cli, err := j.clusterClient()
	if err != nil {
		return refuse(KindUnavailable, "%v", err)
	}
	holders, err := Read(ctx, cli)
	if err != nil {
		return refuse(KindUnavailable, "%v", err)
	}
	h := n.Probe(ctx)
	d := SteadyState(holders, c.ID, h.Ready, h.Message)
	if !d.Grant || !d.Held {
		return d
	}
	held, _ := HeldBy(holders, c.ID)
	if err := Free(ctx, cli, held); err != nil && !errors.Is(err, ErrSlotChanged) {
		return refuse(KindUnavailable, "%v", err)
	}
	n.Recorder().AddDecision(report.ActionRebootReleased, fmt.Sprintf("%s (group %s) is back: %s", c.ID, c.Group, d.Reason))
	n.Logger().Warn("reboot slot released", "id", c.ID, "group", c.Group, "reason", d.Reason)
	j.publishHolders(slices.DeleteFunc(holders, func(o Holder) bool { return o.ID == c.ID }), nil)
	return d
}

// answered records the latest answer in the report.
func (j *Job) answered(op string, c Client, d Decision) {
	a := &report.FleetLockAnswer{At: j.n.Now().UTC(), Operation: op, ID: c.ID, Group: c.Group, Granted: d.Grant, Kind: d.Kind, Reason: d.Reason}
	j.n.Recorder().Update(func(r *report.NodeReport) {
		if r.FleetLock == nil {
			r.FleetLock = &report.FleetLock{Address: j.n.Config().FleetLock.Address}
		}
		r.FleetLock.LastAnswer = a
	})
	j.n.Publish()
}

// Run is one sweep: read the slots for status, and free those whose holder
// is gone (Ghosts) by a transaction each.
func (j *Job) Run(ctx context.Context) error {
	n := j.n
	cli, err := j.clusterClient()
	if err != nil {
		j.publishHolders(nil, err)
		return nil
	}
	holders, err := Read(ctx, cli)
	j.publishHolders(holders, err)
	if err != nil || len(holders) == 0 {
		j.trackDown(nil, nil)
		return nil
	}
	s, err := cluster.Take(ctx, cli, cluster.Options{Now: n.Now})
	if err != nil {
		return nil // no member list: nothing is known to be gone
	}
	members := Members(s)
	downFor := j.trackDown(holders, members)
	grace := n.Config().Cluster.DeadMemberGrace.D()
	for _, g := range Ghosts(holders, members, downFor, grace) {
		if err := Free(ctx, cli, g.Holder); err != nil {
			n.Logger().Info("free a gone holder's reboot slot", "id", g.Holder.ID, "err", err)
			continue
		}
		why := fmt.Sprintf("freed the reboot slot of %s (group %s, held since %s): %s", g.Holder.ID, g.Holder.Group,
			g.Holder.Since.UTC().Format(time.RFC3339), g.Reason)
		n.Recorder().AddDecision(report.ActionRebootSlotFreed, why)
		n.Logger().Warn("reboot slot freed", "id", g.Holder.ID, "group", g.Holder.Group, "reason", g.Reason)
		holders = slices.DeleteFunc(holders, func(h Holder) bool { return h.Key == g.Holder.Key })
		j.publishHolders(holders, nil)
	}
	return nil
}

// trackDown updates when this agent first saw each holder's member down,
// and returns how long each has been down (by hex member ID).
func (j *Job) trackDown(holders []Holder, members []Member) map[string]time.Duration {
	j.downMu.Lock()
	defer j.downMu.Unlock()
	now := j.n.Now()
	seen := map[string]bool{}
	for _, h := range holders {
		i := slices.IndexFunc(members, func(m Member) bool { return fmt.Sprintf("%x", m.ID) == h.MemberID })
		if i < 0 {
			continue
		}
		seen[h.MemberID] = true
		if members[i].Healthy {
			delete(j.downSince, h.MemberID)
		} else if _, ok := j.downSince[h.MemberID]; !ok {
			j.downSince[h.MemberID] = now
		}
	}
	maps.DeleteFunc(j.downSince, func(id string, _ time.Time) bool { return !seen[id] })
	out := map[string]time.Duration{}
	for id, since := range j.downSince {
		out[id] = now.Sub(since)
	}
	return out
}

// publishHolders puts the slots as read into the report, and publishes it
// when they changed (every sweep would rewrite the status file otherwise).
func (j *Job) publishHolders(holders []Holder, err error) {
	hs := make([]report.FleetLockHolder, 0, len(holders))
	for _, h := range holders {
		hs = append(hs, report.FleetLockHolder{ID: h.ID, Group: h.Group, Slot: h.Slot, Member: h.Member, Since: h.Since})
	}
	now := j.n.Now().UTC()
	changed := false
	j.n.Recorder().Update(func(r *report.NodeReport) {
		if r.FleetLock == nil {
			r.FleetLock = &report.FleetLock{Address: j.n.Config().FleetLock.Address}
		}
		f := r.FleetLock
		windowChanged := ShowWindow(f, WindowOf(j.n.Config().FleetLock.MaintenanceWindow), now)
		if err != nil {
			changed = windowChanged || f.Error != cluster.ShortErr(err)
			f.Error = cluster.ShortErr(err)
			return
		}
		changed = windowChanged || f.ReadAt.IsZero() || f.Error != "" || !slices.Equal(f.Holders, hs)
		f.Holders, f.ReadAt, f.Error = hs, now, ""
	})
	if changed {
		j.n.Publish()
	}
}

// Members is a survey as the planner reads it.
func Members(s cluster.Survey) []Member {
	out := make([]Member, len(s.Members))
	for i, m := range s.Members {
		out[i] = Member{ID: m.ID, Name: m.Name, Learner: m.IsLearner, Healthy: m.Answered(), CaughtUp: s.CaughtUp(m), Version: m.Version}
		if len(m.PeerURLs) > 0 {
			out[i].PeerURL = m.PeerURLs[0]
		}
	}
	return out
}

// recoveryInProgress describes the cluster's recovery record when the
// recovery it records is not done ("" otherwise).
func recoveryInProgress(ctx context.Context, cli *clientv3.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, keys.Recovery)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", keys.Recovery, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	var r discovery.Recovery
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return "", fmt.Errorf("read %s: %w", keys.Recovery, err)
	}
	if r.State == discovery.RecoveryDone || r.State == discovery.RecoveryFailed {
		return "", nil
	}
	return r.String(), nil
}
