package status

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// backupLine describes the cluster's newest snapshot for the table.
func backupLine(b *report.Backup, now time.Time) string {
	if b == nil {
		return "off (backup.disabled)"
	}
	var parts []string
	if l := b.Last; l != nil {
		parts = append(parts, fmt.Sprintf("last %s ago, revision %d, by %s in %s", age(now.Sub(l.Time)), l.Revision, l.TakenBy, strings.Join(l.Where, ", ")))
		switch v := b.Verification; {
		case v == nil:
			parts = append(parts, "not verified yet")
		case !v.OK:
			parts = append(parts, "verification of "+v.Name+" FAILED")
		case v.Name == l.Name:
			parts = append(parts, "verified")
		default:
			parts = append(parts, fmt.Sprintf("verified %s ago (an older one)", age(now.Sub(v.At))))
		}
	} else {
		parts = append(parts, "no snapshot yet")
	}
	parts = append(parts, "every "+b.Interval.String())
	return strings.Join(parts, "; ")
}

// backupProblems: no recent snapshot, a failed attempt, a failed
// verification, or this agent unable to take part.
func backupProblems(b *report.Backup, now time.Time, agentUp time.Time) []problem.Problem {
	if b == nil {
		return nil
	}
	var out []problem.Problem
	stale := 2 * b.Interval
	switch l := b.Last; {
	case l == nil && now.Sub(agentUp) > stale:
		out = append(out, problem.SnapshotStale.Newf("backup", "no snapshot taken yet (interval %s): check the agents' logs", b.Interval))
	case l != nil && now.Sub(l.Time) > stale:
		out = append(out, problem.SnapshotStale.Newf("backup", "newest snapshot %s is %s old, more than twice the interval %s", l.Name, age(now.Sub(l.Time)), b.Interval))
	}
	if l := b.Last; l != nil && !slices.ContainsFunc(l.Where, func(w string) bool { return strings.HasPrefix(w, "s3://") }) {
		out = append(out, problem.BackupsSingleNode.Newf("backup", "snapshot %s is kept only on %s's disk (%s): no other node and no S3 bucket holds it", l.Name, l.TakenBy, strings.Join(l.Where, ", ")))
	}
	if f := b.Failure; f != nil {
		out = append(out, problem.SnapshotFailed.Newf("backup", "last snapshot attempt failed (%s, on %s): %s", stamp(f.At, now), f.By, f.Error))
	}
	if v := b.Verification; v != nil && !v.OK {
		out = append(out, problem.SnapshotUnverified.Newf("backup", "snapshot %s failed verification (%s, on %s): %s", v.Name, stamp(v.At, now), v.By, v.Error))
	}
	if b.LocalError != "" && (b.Failure == nil || !strings.Contains(b.LocalError, b.Failure.Error)) {
		out = append(out, problem.SnapshotFailed.New("backup", "snapshots on this node: "+b.LocalError))
	}
	return out
}

// firstTransition is when the agent's recorded history starts (its start,
// as far as the report knows): before twice the interval has passed, no
// snapshot yet is no problem.
func firstTransition(n Node) time.Time {
	if len(n.Transitions) > 0 {
		return n.Transitions[0].At
	}
	return n.UpdatedAt
}
