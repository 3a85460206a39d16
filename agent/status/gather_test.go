package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// gatherTimeout is the per-query timeout of these tests: long enough for a
// loaded CI machine, short enough that a dead member costs little.
const gatherTimeout = 5 * time.Second

// liveReport is what a running, healthy agent on member 0 publishes.
func liveReport(c *statustest.Cluster, now time.Time) *report.NodeReport {
	m := c.Members[0]
	return &report.NodeReport{
		PID: os.Getpid(), Version: "v0.9.0-test", UpdatedAt: now.Add(-2 * time.Second).UTC(),
		Phase: report.PhaseHealthy, Message: "healthy, leader somebody, 3/3 voters", Ready: true,
		Name: m.Name, PrivateIP: m.IP, InstanceID: "i-0status", AvailabilityZone: "eu-west-1a",
		ClientURL: m.ClientURL, Endpoints: c.Endpoints(), CertDir: m.CertDir,
		Transitions: []report.Transition{
			{At: now.Add(-time.Hour).UTC(), Phase: report.PhaseStarting},
			{At: now.Add(-59 * time.Minute).UTC(), Phase: report.PhaseDiscovery, Message: "waiting for 2 more members"},
			{At: now.Add(-58 * time.Minute).UTC(), Phase: report.PhaseHealthy, Message: "healthy"},
		},
		Decisions: []report.Decision{{At: now.Add(-59 * time.Minute).UTC(), Action: "bootstrap", Reason: "no data, discovery not full"}},
	}
}

// deadPID is the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func gather(t *testing.T, c *statustest.Cluster, eps []string, r *report.NodeReport, rerr error) status.View {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*gatherTimeout)
	defer cancel()
	return status.Gather(ctx, status.Options{
		Endpoints: eps, TLS: c.OperatorTLS(t), Timeout: gatherTimeout,
		Quota: 1 << 30, Report: r, ReportErr: rerr, CertDir: c.CertDir,
	})
}

func render(t *testing.T, v status.View, format string) string {
	t.Helper()
	var b bytes.Buffer
	if err := status.Render(&b, v, format); err != nil {
		t.Fatalf("render %s: %v", format, err)
	}
	return b.String()
}

// TestGatherCluster runs every scenario against one real 3-member cluster
// over TLS with client cert auth; the destructive one (a member stopped)
// runs last.
func TestGatherCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1), b.IP(2), b.IP(3))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range c.Members {
		if err := c.WaitLinearizable(ctx, i); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("healthy", func(t *testing.T) {
		// Ask one endpoint only: the others come from its member list.
		v := gather(t, c, c.Endpoints()[:1], liveReport(c, time.Now()), nil)
		checkHealthy(t, c, v, true)

		if code := status.ExitCode(v); code != 0 {
			t.Errorf("ExitCode = %d, want 0; problems %q", code, v.Summary.Problems)
		}

		var back status.View
		if err := json.Unmarshal([]byte(render(t, v, "json")), &back); err != nil {
			t.Fatalf("JSON output does not parse back into a View: %v", err)
		}
		if !reflect.DeepEqual(back, v) {
			t.Errorf("JSON round trip changed the view:\n got %+v\nwant %+v", back, v)
		}

		table := render(t, v, "table")
		for _, m := range c.Members {
			if !strings.Contains(table, m.Name) || !strings.Contains(table, m.ClientURL) {
				t.Errorf("table lacks member %s (%s):\n%s", m.Name, m.ClientURL, table)
			}
		}
		for _, want := range []string{
			"Node     " + c.Members[0].Name + " (" + c.Members[0].IP + ", i-0status, eu-west-1a)",
			"healthy, ready: healthy, leader somebody, 3/3 voters (pid " + fmt.Sprint(os.Getpid()) + ", v0.9.0-test, report 2s old)",
			"server cert expires ", "(364d), peer ", "operator ",
			"starting ", " → discovery ", " → healthy ",
			"bootstrap: no data, discovery not full",
			"leader", "follower", "ok ", "/ 64MiB 0%", "3.7.3",
			"Cluster  healthy: leader ", "HASHKV", "Data     HashKV equal on 3 members at revision ",
		} {
			if !strings.Contains(table, want) {
				t.Errorf("table lacks %q:\n%s", want, table)
			}
		}
		if strings.Contains(table, "Problems") {
			t.Errorf("healthy table lists problems:\n%s", table)
		}
		t.Logf("table:\n%s", table)
	})

	t.Run("agent dead", func(t *testing.T) {
		r := liveReport(c, time.Now())
		r.PID = deadPID(t)
		v := gather(t, c, c.Endpoints(), r, nil)
		checkHealthy(t, c, v, true) // the cluster is still shown, and fine
		want := fmt.Sprintf("agent not running: agent (pid %d) is not running", r.PID)
		if !hasProblem(v, want) {
			t.Errorf("problems = %q, want %q", v.Summary.Problems, want)
		}
		if code := status.ExitCode(v); code != status.ExitUnhealthy {
			t.Errorf("ExitCode = %d, want %d", code, status.ExitUnhealthy)
		}
		table := render(t, v, "table")
		for _, want := range []string{"NOT RUNNING: agent (pid", "last state healthy, ready", "Problems:\n  - [warning] " + want} {
			if !strings.Contains(table, want) {
				t.Errorf("table lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("agent hung", func(t *testing.T) {
		r := liveReport(c, time.Now())
		r.UpdatedAt = time.Now().Add(-10 * time.Minute)
		v := gather(t, c, c.Endpoints(), r, nil)
		if v.Node.AgentAlive || !hasProblem(v, "agent not running: ", "it may be hung") {
			t.Errorf("stale report: alive %v, problems %q", v.Node.AgentAlive, v.Summary.Problems)
		}
	})

	t.Run("no report", func(t *testing.T) {
		_, rerr := report.Read(t.TempDir() + "/status.json")
		v := gather(t, c, c.Endpoints(), nil, rerr)
		checkHealthy(t, c, v, false)
		if !hasProblem(v, "agent not running: no agent report") || v.Node.ReportError == "" {
			t.Errorf("problems = %q, report error %q", v.Summary.Problems, v.Node.ReportError)
		}
		// Certificates come from the cert dir even without a report.
		if len(v.Node.Certs) != 4 || v.Node.Certs[0].Role != "server" || v.Node.Certs[3].Role != "operator" {
			t.Errorf("certs = %+v, want server, peer, client, operator from the cert dir", v.Node.Certs)
		}
		if code := status.ExitCode(v); code != status.ExitUnhealthy {
			t.Errorf("ExitCode = %d", code)
		}
	})

	t.Run("member down", func(t *testing.T) {
		down := (c.Leader() + 1) % len(c.Members) // a follower: no election needed
		c.Stop(down)
		dead := c.Members[down]

		v := gather(t, c, c.Endpoints(), liveReport(c, time.Now()), nil)
		if len(v.Members) != 3 || len(v.Endpoints) != 3 {
			t.Fatalf("members %d, endpoints %d; want 3 and 3", len(v.Members), len(v.Endpoints))
		}
		for _, e := range v.Endpoints {
			if e.Endpoint == dead.ClientURL {
				if e.Healthy || !strings.Contains(e.Error, "connection refused") || e.Name != dead.Name {
					t.Errorf("stopped member's row = %+v, want unhealthy, named, with connection refused", e)
				}
				continue
			}
			if !e.Healthy || e.Error != "" {
				t.Errorf("live member's row = %+v, want healthy", e)
			}
		}
		s := v.Summary
		if s.Healthy || !s.HasLeader || s.HealthyMembers != 2 || s.Members != 3 || s.Answered != 2 {
			t.Errorf("summary = %+v, want unhealthy with a leader and 2/3 healthy members", s)
		}
		// A refused connection ends the probe at once, named as such.
		if !hasProblem(v, "member "+dead.Name+" ("+dead.ClientURL+"): get status: ", "connection refused") {
			t.Errorf("problems = %q, want one naming %s", s.Problems, dead.Name)
		}
		// The dead member is not compared, which is no mismatch.
		checkHashesEqual(t, v, 2)
		if want := "; not compared: " + dead.Name + " (did not answer)"; !strings.HasSuffix(v.HashKV.Description, want) || hasProblem(v, "HashKV") {
			t.Errorf("hash check %q, want it to end in %q and no HashKV problem", v.HashKV.Description, want)
		}
		if code := status.ExitCode(v); code != status.ExitUnhealthy {
			t.Errorf("ExitCode = %d", code)
		}
		table := render(t, v, "table")
		if !strings.Contains(table, "error: get status: dial tcp") || !strings.Contains(table, "Cluster  UNHEALTHY: leader ") {
			t.Errorf("table does not show the dead row:\n%s", table)
		}
		t.Logf("table:\n%s", table)

		// Only the dead member to ask: nothing answers, and the view says so.
		v = gather(t, c, []string{dead.ClientURL}, nil, nil)
		if v.Summary.Answered != 0 || v.MemberListError == "" || !hasProblem(v, "no etcd member answered: "+dead.ClientURL+": ") {
			t.Errorf("summary %+v, member list error %q", v.Summary, v.MemberListError)
		}
		if len(v.Endpoints) != 1 || v.Endpoints[0].Healthy {
			t.Errorf("endpoints = %+v", v.Endpoints)
		}
	})
}

// checkHealthy asserts what a healthy 3-member cluster looks like.
func checkHealthy(t *testing.T, c *statustest.Cluster, v status.View, withReport bool) {
	t.Helper()
	if v.MemberListError != "" || len(v.Members) != 3 || len(v.Endpoints) != 3 {
		t.Fatalf("member list error %q, %d members, %d endpoints; want 3 and 3", v.MemberListError, len(v.Members), len(v.Endpoints))
	}
	ids := map[string]string{}
	for i, m := range v.Members {
		if m.Name != c.Members[i].Name || m.IsLearner || len(m.ClientURLs) != 1 || m.ClientURLs[0] != c.Members[i].ClientURL ||
			len(m.PeerURLs) != 1 || m.PeerURLs[0] != c.Members[i].PeerURL {
			t.Errorf("member %d = %+v, want %s", i, m, c.Members[i].Name)
		}
		ids[m.ID] = m.Name
	}
	leaders := 0
	for i, e := range v.Endpoints {
		if e.Endpoint != c.Members[i].ClientURL || ids[e.MemberID] != e.Name || e.Name != c.Members[i].Name {
			t.Errorf("endpoint row %d = %+v, want %s of member %s", i, e, c.Members[i].ClientURL, c.Members[i].Name)
		}
		if !e.Healthy || e.Error != "" || e.HealthLatencyMS <= 0 || e.RaftTerm == 0 || e.RaftIndex == 0 ||
			e.DBSize == 0 || e.Version != "3.7.3" || e.Quota != statustest.QuotaBytes || len(e.Alarms) != 0 {
			t.Errorf("endpoint row %d = %+v, want healthy with raft, db and version filled", i, e)
		}
		if e.Leader {
			leaders++
			if e.Role != "leader" || v.Summary.Leader != e.Name {
				t.Errorf("leader row %+v, summary leader %q", e, v.Summary.Leader)
			}
		} else if e.Role != "follower" {
			t.Errorf("row %d role %q, want follower", i, e.Role)
		}
	}
	if leaders != 1 {
		t.Errorf("%d leader rows, want 1", leaders)
	}
	s := v.Summary
	if !s.Healthy || !s.HasLeader || s.Members != 3 || s.Voters != 3 || s.Learners != 0 || s.HealthyMembers != 3 || s.Answered != 3 {
		t.Errorf("summary = %+v, want healthy 3/3 voters with a leader", s)
	}
	checkHashesEqual(t, v, 3)
	if withReport && v.Node.Name != c.Members[0].Name {
		t.Errorf("node = %+v, want member 0's name from the report", v.Node)
	}
	if len(v.Node.Certs) != 4 || v.Node.Certs[0].DaysLeft != 364 {
		t.Errorf("node = %+v, want four certs with 364 days left", v.Node)
	}
}

// checkHashesEqual asserts that n members were compared and have one hash,
// shown in their rows.
func checkHashesEqual(t *testing.T, v status.View, n int) {
	t.Helper()
	h := v.HashKV
	want := fmt.Sprintf("HashKV equal on %d members at revision %d", n, h.Revision)
	if h.Mismatch || h.Revision == 0 || !strings.HasPrefix(h.Description, want) {
		t.Errorf("hash check = %+v, want %q", h, want)
	}
	hashes := map[string]int{}
	for _, r := range h.Results {
		if r.Compared {
			hashes[r.Hash]++
		}
	}
	if len(hashes) != 1 {
		t.Errorf("compared hashes %v, want one hash on %d members", hashes, n)
	}
	for hash, count := range hashes {
		rows := 0
		for _, e := range v.Endpoints {
			if e.HashKV == hash {
				rows++
			}
		}
		if count != n || rows != n || len(hash) != 8 {
			t.Errorf("hash %q on %d members and %d rows, want %d", hash, count, rows, n)
		}
	}
}

func hasProblem(v status.View, parts ...string) bool {
	for _, p := range v.Summary.Problems {
		ok := true
		for _, part := range parts {
			ok = ok && strings.Contains(p.Text, part)
		}
		if ok {
			return true
		}
	}
	return false
}
