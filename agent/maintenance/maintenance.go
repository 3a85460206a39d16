// Package maintenance decides the agents' care of etcd's backend: which
// member to defragment next, when to wait, and how to recover from a NOSPACE
// alarm. Plan is a pure function over facts the agent gathers each round
// (the Job, job.go, does the I/O), so every decision is table-tested.
//
// An agent acts only once its own member is a caught-up voter (the job runs
// from etcd's start, before READY: a member under NOSPACE is never ready).
// Defragmentation is one member at a time, by one agent: the agent whose
// member leads (the coordinator). It defragments followers first, one per
// round, paced, under the cluster-wide membership lock, and the leader last,
// after moving leadership away, so no client waits on a defragmenting
// leader. Under NOSPACE etcd refuses the lease and the put the lock is made
// of: leadership itself is the lock then. The coordinator defragments only
// while nobody holds the membership lock, without pacing (writes are failing
// already); an agent that has waited Policy.TakeOver for a coordinator that
// does not act (its agent down or stuck) takes leadership and acts. The
// steps that need no exclusion (compaction, the disarm once every file is
// under the limit) are taken by whichever agent is up.
package maintenance

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Alarm names as etcd's alarm list spells them.
const (
	AlarmNoSpace = "NOSPACE"
	AlarmCorrupt = "CORRUPT"
)

// MaxLag is how many Raft entries a member may be behind the leader's last
// index and still count as caught up.
const MaxLag = 1000

// Policy is the configured thresholds (config.Maintenance).
type Policy struct {
	// FreeRatio and FreeBytes: defragment when the unused part of a
	// member's database file reaches both.
	FreeRatio float64
	FreeBytes int64
	// Pace is the pause between two defragmentations cluster-wide.
	Pace time.Duration
	// DisarmBelow is the fraction of the quota every database file must be
	// under before a NOSPACE alarm is disarmed.
	DisarmBelow float64
	// Retention is etcd.autoCompactionRetention, named in messages.
	Retention time.Duration
	// TakeOver is how long an agent waits under NOSPACE for the leader's
	// agent to defragment before it takes leadership to do it itself; the
	// n-th voter in ID order (the leader left out) waits n times as long,
	// so two agents do not take over at once.
	TakeOver time.Duration
}

// Member is one member as its status query found it.
type Member struct {
	ID       uint64
	Name     string
	Endpoint string
	Learner  bool
	// Err is why the member did not answer its status query ("" when it did).
	Err string
	// Leader is the leader as this member sees it (0: none).
	Leader                  uint64
	RaftIndex, AppliedIndex uint64
	// DBSize is the database file's size, DBInUse the part holding data.
	DBSize, DBInUse int64
	// Quota is the member's backend quota (0: unknown, the configured one
	// is used).
	Quota int64
	// Alarms raised for this member (AlarmNoSpace, AlarmCorrupt).
	Alarms []string
}

// Answered reports whether the member answered its status query.
func (m Member) Answered() bool { return m.Err == "" }

// Free is the unused part of the database file.
func (m Member) Free() int64 { return max(0, m.DBSize-m.DBInUse) }

// Fragmentation is the unused fraction of the database file (0..1).
func (m Member) Fragmentation() float64 {
	if m.DBSize <= 0 {
		return 0
	}
	return float64(m.Free()) / float64(m.DBSize)
}

func (m Member) label() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x", m.ID)
}

// Facts is what an agent knows at the start of a round.
type Facts struct {
	Now time.Time
	// Self is the local member's ID; Leader the leader as the local member
	// sees it.
	Self, Leader uint64
	Members      []Member
	// Quota is the configured etcd.quotaBackendBytes, for members that do
	// not report theirs.
	Quota  int64
	Policy Policy
	// LastDefrag is when the cluster's last defragmentation ended (zero:
	// none known).
	LastDefrag time.Time
	// CompactTarget is the newest revision older than the retention that
	// the agent knows of (0: none yet); Compacted says etcd's history is
	// compacted at least that far.
	CompactTarget int64
	Compacted     bool
	// Revision is the cluster's revision as the local member reports it.
	Revision int64
	// LockHeld: another agent holds the membership lock (read under
	// NOSPACE, when the lock cannot be taken).
	LockHeld bool
	// Live is the live data's size as this agent's latest NOSPACE
	// defragmentation measured it (zero: none).
	Live Live
	// LeaderWait is how long this agent has seen NOSPACE under the current
	// leader without acting (the job times it).
	LeaderWait time.Duration
}

// Live is a member's database size right after its defragmentation: the
// size of the data it holds, with nothing unused.
type Live struct {
	Member string
	Size   int64
	At     time.Time
	// Revision is the cluster's revision at the measurement.
	Revision int64
}

// liveOverQuota reports whether a measurement shows that the live data does
// not fit. It holds until a compaction reaches a revision written after it
// (data deleted since is now freed), a member's data in use falls under the
// limit, or one Pace passed (the history older than the measurement that
// compactions freed since: one follower is measured again).
func (f Facts) liveOverQuota() bool {
	limit := int64(float64(f.Quota) * f.Policy.DisarmBelow)
	if f.Live.Size < limit || f.Now.Sub(f.Live.At) >= f.Policy.Pace || f.CompactTarget > f.Live.Revision {
		return false
	}
	return !slices.ContainsFunc(f.Members, func(m Member) bool { return m.Answered() && m.DBInUse < f.disarmLimit(m) })
}

// measuredOverLimit reports whether m is the member this agent's latest
// NOSPACE defragmentation measured, recently and at the current
// compaction, and its live data is still over m's own disarm limit (its
// data in use has not fallen since: nothing was deleted).
func (f Facts) measuredOverLimit(m Member) bool {
	return f.Live.Member != "" && f.Live.Member == m.Name && f.Now.Sub(f.Live.At) < f.Policy.Pace &&
		f.CompactTarget <= f.Live.Revision && f.Live.Size >= f.disarmLimit(m) && m.DBInUse >= f.disarmLimit(m)
}

// NoSpace reports whether a NOSPACE alarm is raised.
func (f Facts) NoSpace() bool {
	return slices.ContainsFunc(f.Members, func(m Member) bool { return slices.Contains(m.Alarms, AlarmNoSpace) })
}

// Coordinator reports whether the local member leads: its agent is the one
// that acts.
func (f Facts) Coordinator() bool { return f.Self != 0 && f.Self == f.Leader }

func (f Facts) quota(m Member) int64 {
	if m.Quota > 0 {
		return m.Quota
	}
	return f.Quota
}

// disarmLimit is the database size every member must be under before a
// NOSPACE alarm is disarmed.
func (f Facts) disarmLimit(m Member) int64 {
	return int64(float64(f.quota(m)) * f.Policy.DisarmBelow)
}

// Fragmented reports whether m's unused space reaches both thresholds.
func (p Policy) Fragmented(m Member) bool {
	return m.Answered() && m.Free() >= p.FreeBytes && m.Fragmentation() >= p.FreeRatio
}

// Kind is what to do this round.
type Kind string

// Kinds of Step.
const (
	// None: nothing is due.
	None Kind = "none"
	// Wait: something is due but not now (Reason says why).
	Wait Kind = "wait"
	// Compact the history up to Step.Revision (NOSPACE).
	Compact Kind = "compact"
	// Defrag Step.Member; when it leads, move leadership to
	// Step.MoveLeaderTo first.
	Defrag Kind = "defrag"
	// Disarm the NOSPACE alarms of Step.Alarmed.
	Disarm Kind = "disarm"
	// Keep the NOSPACE alarm: the data itself does not fit (Reason says
	// what to do).
	Keep Kind = "keep"
	// TakeLead moves leadership to the local member (Step.MoveLeaderTo):
	// under NOSPACE the leader's agent did not defragment for
	// Policy.TakeOver.
	TakeLead Kind = "take-lead"
)

// Step is the decision of one round.
type Step struct {
	Kind   Kind
	Reason string
	// Act: the local agent carries the step out (it coordinates);
	// otherwise the step is what the coordinator will do.
	Act bool
	// NoSpace: the step is part of NOSPACE recovery (no lock, no pacing).
	NoSpace bool
	// Member to defragment; MoveLeaderTo the voter that takes over first
	// when Member leads (0: no other healthy voter).
	Member       Member
	MoveLeaderTo uint64
	Revision     int64
	Alarmed      []uint64
}

// Plan decides this round's step.
func Plan(f Facts) Step {
	if f.NoSpace() {
		return planNoSpace(f)
	}
	var due []Member
	for _, m := range f.Members {
		if f.Policy.Fragmented(m) {
			due = append(due, m)
		}
	}
	if len(due) == 0 {
		return Step{Kind: None}
	}
	if why := unhealthy(f); why != "" {
		return Step{Kind: Wait, Reason: fmt.Sprintf("defragmentation of %s waits: %s", names(due), why)}
	}
	if !f.Coordinator() {
		return Step{Kind: Wait, Reason: fmt.Sprintf("%s fragmented: the leader's agent (%s) defragments", names(due), f.leaderName())}
	}
	if why := f.selfNotReady(); why != "" {
		return Step{Kind: Wait, Reason: fmt.Sprintf("defragmentation of %s waits: %s", names(due), why)}
	}
	if next := f.LastDefrag.Add(f.Policy.Pace); f.Now.Before(next) {
		return Step{Kind: Wait, Reason: fmt.Sprintf("%s fragmented: pacing, next defragmentation after %s", names(due), next.UTC().Format(time.TimeOnly))}
	}
	m := f.order(due)[0]
	s := Step{Kind: Defrag, Act: true, Member: m,
		Reason: fmt.Sprintf("%s is fragmented: %s of %s unused (%.0f%%)", m.label(), Bytes(m.Free()), Bytes(m.DBSize), 100*m.Fragmentation())}
	f.leaderMove(&s)
	return s
}

func planNoSpace(f Facts) Step {
	if slices.ContainsFunc(f.Members, func(m Member) bool { return slices.Contains(m.Alarms, AlarmCorrupt) }) {
		return Step{Kind: Wait, NoSpace: true, Reason: "NOSPACE: no recovery while a CORRUPT alarm is raised (see `etcd-agent status`)"}
	}
	if why := f.selfNotReady(); why != "" {
		return Step{Kind: Wait, NoSpace: true, Reason: "NOSPACE recovery waits: " + why}
	}
	// The leader's agent recovers; another agent takes over once it has
	// waited Policy.TakeOver for it (its agent down, or not acting).
	after := f.takeOverAfter()
	takeOver := !f.Coordinator() && after > 0 && f.LeaderWait >= after
	acts := f.Coordinator() || takeOver
	waitLeader := func(what string) Step {
		return Step{Kind: Wait, NoSpace: true, Reason: fmt.Sprintf("NOSPACE: the leader's agent (%s) %s", f.leaderName(), what)}
	}
	// A kept alarm stays kept while its measurement is fresh, before a
	// compaction up to the measured revision: that compaction frees nothing
	// written after the measurement, and running it first reported the
	// alarm "recovering" for a round each time history aged past the
	// retention (the nospace-kept problem and its alert flapped). The
	// next measurement, after a pace, compacts first.
	// Only a member just defragmented shows the live data's size: before,
	// "in use" also counts pages a compaction freed but bbolt has not yet
	// released, which can exceed the quota for a while.
	if f.liveOverQuota() {
		limit := int64(float64(f.Quota) * f.Policy.DisarmBelow)
		return Step{Kind: Keep, NoSpace: true, Reason: fmt.Sprintf(
			"NOSPACE alarm kept: the live data does not fit the quota: %s holds %s in use after compacting to etcd.autoCompactionRetention (%s) and defragmenting; quota %s, the alarm is disarmed only below %s (%.0f%%) — delete data (it is freed once older than etcd.autoCompactionRetention), or raise etcd.quotaBackendBytes (it rolls out one node at a time)",
			f.Live.Member, Bytes(f.Live.Size), f.Policy.Retention, Bytes(f.Quota), Bytes(limit), 100*f.Policy.DisarmBelow)}
	}
	if f.CompactTarget > 0 && !f.Compacted {
		s := Step{Kind: Compact, NoSpace: true, Revision: f.CompactTarget, Act: true,
			Reason: fmt.Sprintf("NOSPACE: compacting the history up to revision %d (older than etcd.autoCompactionRetention %s)", f.CompactTarget, f.Policy.Retention)}
		if !acts {
			return waitLeader("compacts: " + s.Reason)
		}
		return s // a compaction needs no exclusion
	}
	if why := unhealthy(f); why != "" {
		return Step{Kind: Wait, NoSpace: true, Reason: "NOSPACE recovery waits: " + why}
	}
	var big []Member
	for _, m := range f.Members {
		if m.DBSize >= f.disarmLimit(m) {
			big = append(big, m)
		}
	}
	// A member just defragmented and still over its own limit gains
	// nothing from another defragmentation: its live data exceeds the
	// quota its etcd runs with, which is below the configured one (an
	// equal one is kept above), so the raised quota rolls out to it (in
	// member ID order under NOSPACE). Defragmenting it again and again
	// only stalls it and floods the decisions.
	if i := slices.IndexFunc(big, f.measuredOverLimit); i >= 0 {
		m := big[i]
		big = slices.Delete(big, i, i+1)
		if len(big) == 0 {
			return Step{Kind: Wait, NoSpace: true, Reason: fmt.Sprintf(
				"NOSPACE: %s holds %s of live data, over the disarm limit of the quota its etcd runs with (%s of %s): waiting for the configured quota (%s) to reach it; defragmenting it again frees nothing",
				m.label(), Bytes(f.Live.Size), Bytes(f.disarmLimit(m)), Bytes(f.quota(m)), Bytes(f.Quota))}
		}
	}
	if len(big) == 0 {
		// Every file is under the limit (defragmented, or the quota was
		// raised): the disarm needs no exclusion either.
		if !acts {
			return waitLeader("disarms: every database is under the limit")
		}
		var ids []uint64
		for _, m := range f.Members {
			if slices.Contains(m.Alarms, AlarmNoSpace) {
				ids = append(ids, m.ID)
			}
		}
		return Step{Kind: Disarm, Act: true, NoSpace: true, Alarmed: ids,
			Reason: fmt.Sprintf("NOSPACE: every database is below %s (%.0f%% of the quota): disarming", Bytes(int64(float64(f.Quota)*f.Policy.DisarmBelow)), 100*f.Policy.DisarmBelow)}
	}
	if takeOver {
		// Defragmentation needs the exclusion that leadership stands for
		// under NOSPACE: take it.
		return Step{Kind: TakeLead, Act: true, NoSpace: true, MoveLeaderTo: f.Self, Reason: fmt.Sprintf(
			"NOSPACE: the leader's agent (%s) did not recover for %s: taking leadership to recover (the membership lock cannot be taken under NOSPACE; leadership stands in for it)",
			f.leaderName(), f.LeaderWait.Round(time.Second))}
	}
	if !f.Coordinator() {
		s := waitLeader("recovers: it defragments the members, then disarms the alarm or, if the live data does not fit, keeps it and says why")
		if after > 0 {
			s.Reason += fmt.Sprintf(" (this agent takes over in %s)", (after - f.LeaderWait).Round(time.Second))
		}
		return s
	}
	if f.LockHeld {
		return Step{Kind: Wait, NoSpace: true, Reason: "NOSPACE recovery waits for the membership lock's holder to finish (the lock itself cannot be taken under NOSPACE)"}
	}
	m := f.order(big)[0]
	st := Step{Kind: Defrag, Act: true, NoSpace: true, Member: m,
		Reason: fmt.Sprintf("NOSPACE: defragmenting %s: its file is %s, %s in use, disarm below %s", m.label(), Bytes(m.DBSize), Bytes(m.DBInUse), Bytes(f.disarmLimit(m)))}
	f.leaderMove(&st)
	return st
}

// selfNotReady says why the local member may not be acted on or through
// yet, "" when it is a voter that answers, sees a leader and is caught up
// (what READY means; the job runs before READY).
func (f Facts) selfNotReady() string {
	i := slices.IndexFunc(f.Members, func(m Member) bool { return m.ID == f.Self })
	if f.Self == 0 || i < 0 {
		return "the local member is not in the member list"
	}
	self := f.Members[i]
	var leaderIndex uint64
	for _, m := range f.Members {
		if m.ID == f.Leader && m.Answered() {
			leaderIndex = m.RaftIndex
		}
	}
	switch {
	case !self.Answered():
		return "the local member does not answer (" + self.Err + ")"
	case self.Learner:
		return "the local member is a learner"
	case f.Leader == 0 || self.Leader == 0:
		return "the local member sees no leader"
	case leaderIndex == 0:
		return "the leader does not answer"
	case leaderIndex > self.AppliedIndex+MaxLag:
		return fmt.Sprintf("the local member is catching up (%d entries behind)", leaderIndex-self.AppliedIndex)
	}
	return ""
}

// takeOverAfter is how long this agent waits for the leader's agent before
// taking over: Policy.TakeOver times its rank among the voters other than
// the leader (0: never, e.g. a learner).
func (f Facts) takeOverAfter() time.Duration {
	rank, voter := 0, false
	for _, m := range f.Members {
		switch {
		case m.ID == f.Leader || m.Learner:
		case m.ID == f.Self:
			voter = true
		case m.ID < f.Self:
			rank++
		}
	}
	if !voter {
		return 0
	}
	return f.Policy.TakeOver * time.Duration(rank+1)
}

// unhealthy says why not every member is healthy, "" when all are: each
// answers, sees a leader, is caught up, and no CORRUPT alarm is raised.
func unhealthy(f Facts) string {
	var leaderIndex uint64
	for _, m := range f.Members {
		if m.ID == f.Leader {
			leaderIndex = m.RaftIndex
		}
	}
	var why []string
	for _, m := range f.Members {
		switch {
		case !m.Answered():
			why = append(why, m.label()+" does not answer ("+m.Err+")")
		case m.Leader == 0:
			why = append(why, m.label()+" has no leader")
		case slices.Contains(m.Alarms, AlarmCorrupt):
			why = append(why, m.label()+" has a CORRUPT alarm")
		case leaderIndex > m.AppliedIndex+MaxLag:
			why = append(why, fmt.Sprintf("%s is catching up (%d entries behind)", m.label(), leaderIndex-m.AppliedIndex))
		}
	}
	if f.Leader == 0 {
		why = append(why, "the local member sees no leader")
	}
	return strings.Join(why, "; ")
}

// order puts followers first (most unused space first, then by ID) and the
// leader last.
func (f Facts) order(ms []Member) []Member {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b Member) int {
		if la, lb := a.ID == f.Leader, b.ID == f.Leader; la != lb {
			if la {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(b.Free(), a.Free()), cmp.Compare(a.ID, b.ID))
	})
	return ms
}

// leaderMove fills MoveLeaderTo when the step defragments the leader: the
// healthy voter with the lowest ID other than the leader.
func (f Facts) leaderMove(s *Step) {
	if s.Member.ID != f.Leader {
		return
	}
	for _, m := range f.Members {
		if m.ID == f.Leader || m.Learner || !m.Answered() {
			continue
		}
		if s.MoveLeaderTo == 0 || m.ID < s.MoveLeaderTo {
			s.MoveLeaderTo = m.ID
		}
	}
	if s.MoveLeaderTo == 0 {
		s.Reason += "; it is the only voter: the cluster pauses while it is defragmented"
		return
	}
	s.Reason += "; the leader goes last, leadership moves to " + f.name(s.MoveLeaderTo) + " first"
}

func (f Facts) name(id uint64) string {
	for _, m := range f.Members {
		if m.ID == id {
			return m.label()
		}
	}
	return fmt.Sprintf("%x", id)
}

func (f Facts) leaderName() string {
	if f.Leader == 0 {
		return "no leader"
	}
	return f.name(f.Leader)
}

func names(ms []Member) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.label()
	}
	return strings.Join(out, ", ")
}

// Bytes renders a size for messages: "64 MiB", "512 KiB", "100 B".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f, suffix = f/unit, s
		if f < unit {
			break
		}
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), suffix)
	}
	return fmt.Sprintf("%.1f %s", f, suffix)
}
