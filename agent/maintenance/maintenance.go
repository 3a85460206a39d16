// Package maintenance decides the agents' care of etcd's backend: which
// member to defragment next, when to wait, and how to recover from a NOSPACE
// alarm. Plan is a pure function over facts the agent gathers each round
// (the Job, job.go, does the I/O), so every decision is table-tested.
//
// One agent acts at a time: the agent whose member leads (the coordinator).
// It defragments followers first, one per round, paced, under the
// cluster-wide membership lock, and the leader last, after moving leadership
// away, so no client waits on a defragmenting leader. Under NOSPACE etcd
// refuses the lease and the put the lock is made of, so the coordinator acts
// only while nobody holds the lock, and compaction, defragmentation and the
// disarm (all allowed under NOSPACE) follow one another without pacing:
// writes are failing already.
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
	if f.CompactTarget > 0 && !f.Compacted {
		s := Step{Kind: Compact, NoSpace: true, Revision: f.CompactTarget, Act: f.Coordinator(),
			Reason: fmt.Sprintf("NOSPACE: compacting the history up to revision %d (older than etcd.autoCompactionRetention %s)", f.CompactTarget, f.Policy.Retention)}
		if !s.Act {
			s.Kind, s.Reason = Wait, s.Reason+": the leader's agent ("+f.leaderName()+") does it"
		}
		return s
	}
	// Only a member just defragmented shows the live data's size: before,
	// "in use" also counts pages a compaction freed but bbolt has not yet
	// released, which can exceed the quota for a while.
	if f.liveOverQuota() {
		limit := int64(float64(f.Quota) * f.Policy.DisarmBelow)
		return Step{Kind: Keep, NoSpace: true, Reason: fmt.Sprintf(
			"NOSPACE alarm kept: the live data does not fit the quota: %s holds %s in use after compacting to etcd.autoCompactionRetention (%s) and defragmenting; quota %s, the alarm is disarmed only below %s (%.0f%%) — delete data (it is freed once older than etcd.autoCompactionRetention), or raise etcd.quotaBackendBytes (it rolls out one node at a time)",
			f.Live.Member, Bytes(f.Live.Size), f.Policy.Retention, Bytes(f.Quota), Bytes(limit), 100*f.Policy.DisarmBelow)}
	}
	if why := unhealthy(f); why != "" {
		return Step{Kind: Wait, NoSpace: true, Reason: "NOSPACE recovery waits: " + why}
	}
	if !f.Coordinator() {
		return Step{Kind: Wait, NoSpace: true, Reason: fmt.Sprintf("NOSPACE: the leader's agent (%s) recovers: it defragments the members, then disarms the alarm or, if the live data does not fit, keeps it and says why", f.leaderName())}
	}
	if f.LockHeld {
		return Step{Kind: Wait, NoSpace: true, Reason: "NOSPACE recovery waits for the membership lock's holder to finish (the lock itself cannot be taken under NOSPACE)"}
	}
	var big []Member
	for _, m := range f.Members {
		if m.DBSize >= f.disarmLimit(m) {
			big = append(big, m)
		}
	}
	if len(big) > 0 {
		m := f.order(big)[0]
		s := Step{Kind: Defrag, Act: true, NoSpace: true, Member: m,
			Reason: fmt.Sprintf("NOSPACE: defragmenting %s: its file is %s, %s in use, disarm below %s", m.label(), Bytes(m.DBSize), Bytes(m.DBInUse), Bytes(f.disarmLimit(m)))}
		f.leaderMove(&s)
		return s
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
