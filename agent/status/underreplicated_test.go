package status

import (
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestUnderReplicated: fewer voters than cluster.size is the
// under-replicated warning, with the failures the cluster still tolerates,
// and exit 3 even when every member is healthy; a learner does not count
// as a voter; without a known size, or without a member list, nothing is
// claimed.
func TestUnderReplicated(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	// cluster makes n healthy voters (member 1 leads) and l learners.
	cluster := func(n, l int) (memberList, []probe) {
		var list memberList
		var probes []probe
		for i := 1; i <= n+l; i++ {
			id := uint64(i)
			url := "https://10.0.0." + string(rune('0'+i)) + ":2379"
			list.members = append(list.members, &pb.Member{ID: id, Name: "etcd-" + string(rune('0'+i)), ClientURLs: []string{url}, IsLearner: i > n})
			probes = append(probes, probe{endpoint: url, status: &pb.StatusResponse{
				Header: &pb.ResponseHeader{MemberId: id, Revision: 10}, Leader: 1, IsLearner: i > n}})
		}
		list.from = probes[0].endpoint
		return list, probes
	}
	cases := []struct {
		name              string
		voters, learners  int
		size              int
		listErr           string
		want              string // the problem's text, "" for none
		verdict           string
		exit              int
		healthyInSummary  bool
		problemsInSummary int
	}{
		{"2 of 3", 2, 0, 3, "", "2 of 3 voters (cluster.size): the cluster tolerates no failure instead of 1 failed member",
			"UNHEALTHY: leader etcd-1, 2/2 members healthy (2 voters, 0 learners); under-replicated: 2 of 3 voters", 3, false, 1},
		{"3 of 5", 3, 0, 5, "", "3 of 5 voters (cluster.size): the cluster tolerates 1 failed member instead of 2 failed members",
			"under-replicated: 3 of 5 voters", 3, false, 1},
		{"a learner is not a voter", 2, 1, 3, "", "2 of 3 voters (cluster.size)", "under-replicated: 2 of 3 voters", 3, false, 2},
		{"full", 3, 0, 3, "", "", "healthy: leader etcd-1, 3/3 members healthy (3 voters, 0 learners)", 0, true, 0},
		{"more voters than size", 5, 0, 3, "", "", "healthy: leader etcd-1, 5/5 members healthy", 0, true, 0},
		{"size not known", 2, 0, 0, "", "", "healthy: leader etcd-1, 2/2 members healthy", 0, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			list, probes := cluster(c.voters, c.learners)
			v := assemble(facts{now: now, size: c.size, list: list, probes: probes,
				node: Node{AgentAlive: true, Phase: "healthy"}})
			found := ""
			for _, p := range v.Summary.Problems {
				if p.Code == "under-replicated" {
					found = p.Text
					if p.Severity != "warning" || !strings.Contains(p.Fix, "cluster.size nodes") {
						t.Errorf("problem %+v, want a warning with the fix", p)
					}
				}
			}
			if (c.want == "") != (found == "") || !strings.Contains(found, c.want) {
				t.Errorf("under-replicated problem %q, want %q", found, c.want)
			}
			if got := verdict(v.Summary); !strings.Contains(got, c.verdict) {
				t.Errorf("verdict %q, want it to contain %q", got, c.verdict)
			}
			if got := ExitCode(v); got != c.exit {
				t.Errorf("exit %d, want %d", got, c.exit)
			}
			if v.Summary.Healthy != c.healthyInSummary || len(v.Summary.Problems) != c.problemsInSummary || v.Summary.Size != c.size {
				t.Errorf("summary %+v", v.Summary)
			}
		})
	}
	// No member list: the voters are not known, so no count is claimed.
	_, probes := cluster(2, 0)
	v := assemble(facts{now: now, size: 3, list: memberList{err: "no endpoint answered the member list"}, probes: probes, node: Node{AgentAlive: true, Phase: "healthy"}})
	for _, p := range v.Summary.Problems {
		if p.Code == "under-replicated" {
			t.Errorf("under-replicated claimed without a member list: %+v", p)
		}
	}
}
