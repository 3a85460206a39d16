package status

import (
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
)

func TestBackupProblems(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	up := now.Add(-24 * time.Hour)
	last := func(age time.Duration) *report.Snapshot {
		return &report.Snapshot{Name: "snap", Revision: 42, Time: now.Add(-age), TakenBy: "etcd-10-0-1-5", Where: []string{"/var/lib/etcd-agent/snapshots", "s3://b/p"}}
	}
	ok := &report.Verification{Name: "snap", At: now.Add(-time.Hour), OK: true}
	cases := []struct {
		name     string
		b        *report.Backup
		problems []string // substrings, one per problem; none: no problem
		line     string
	}{
		{"off", nil, nil, "off"},
		{"fresh and verified", &report.Backup{Interval: 30 * time.Minute, Last: last(10 * time.Minute), Verification: ok}, nil,
			"last 10m0s ago, revision 42, by etcd-10-0-1-5 in /var/lib/etcd-agent/snapshots, s3://b/p; verified; every 30m0s"},
		{"older than twice the interval", &report.Backup{Interval: 30 * time.Minute, Last: last(61 * time.Minute), Verification: ok},
			[]string{"newest snapshot snap is 1h1m0s old, more than twice the interval 30m0s"}, "last 1h1m0s ago"},
		{"last attempt failed", &report.Backup{Interval: 30 * time.Minute, Last: last(20 * time.Minute), Verification: ok,
			Failure: &report.Failure{At: now.Add(-time.Minute), By: "etcd-10-0-1-6", Error: "upload: bucket \"x\" does not exist"}},
			[]string{"last snapshot attempt failed (11:59:00, on etcd-10-0-1-6): upload: bucket"}, "verified"},
		{"verification failed", &report.Backup{Interval: 30 * time.Minute, Last: last(5 * time.Minute),
			Verification: &report.Verification{Name: "snap", At: now, By: "n", Error: "truncated or corrupt"}},
			[]string{"snapshot snap failed verification"}, "verification of snap FAILED"},
		{"none yet, agent up long", &report.Backup{Interval: 30 * time.Minute}, []string{"no snapshot taken yet"}, "no snapshot yet"},
		{"only on one node's disk", &report.Backup{Interval: 30 * time.Minute, Verification: ok,
			Last: &report.Snapshot{Name: "snap", Revision: 42, Time: now.Add(-time.Minute), TakenBy: "etcd-10-0-1-5", Where: []string{"/var/lib/etcd-agent/snapshots"}}},
			[]string{"snapshot snap is kept only on etcd-10-0-1-5's disk (/var/lib/etcd-agent/snapshots): no other node and no S3 bucket holds it"}, "verified"},
		{"this node cannot read the record", &report.Backup{Interval: 30 * time.Minute, Last: last(time.Minute), Verification: ok, LocalError: "read snapshot record: timeout"},
			[]string{"snapshots on this node: read snapshot record: timeout"}, "verified"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := backupProblems(c.b, now, up)
			if len(got) != len(c.problems) {
				t.Fatalf("problems %q, want %d like %q", got, len(c.problems), c.problems)
			}
			for i, want := range c.problems {
				if !strings.Contains(got[i].Text, want) {
					t.Errorf("problem %q does not say %q", got[i].Text, want)
				}
			}
			if line := backupLine(c.b, now); !strings.Contains(line, c.line) {
				t.Errorf("line %q does not say %q", line, c.line)
			}
		})
	}
	if got := backupProblems(&report.Backup{Interval: 30 * time.Minute}, now, now.Add(-10*time.Minute)); len(got) != 0 {
		t.Errorf("a young agent without a snapshot yet has problems: %q", got)
	}
}
