package fault_test

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestLeaveKilledMidway: `etcd-agent leave` is killed at a step of its work
// (node 4 right after it starts removing its member, node 3 once the removal
// is committed); running it again finishes the job: member gone, data wiped,
// the marker says left, the node's agent exits and stays out, and the rest
// of the cluster is healthy.
func TestLeaveKilledMidway(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useV3Discovery(4)
	n := c.form(4)
	cli := c.client(1, 2)
	c.waitMembers(cli, time.Minute, 1, 2, 3, 4)
	w := lintest.Start(t, cli, 2)

	remaining := []int{1, 2, 3, 4}
	for _, step := range []struct {
		node int
		at   string
	}{{4, "removing member"}, {3, "removal committed"}} {
		nd := n[step.node]
		var once sync.Once
		reached := make(chan struct{})
		leave := c.spawn("leave-killed-node"+strconv.Itoa(step.node), nil, func(line string) {
			if strings.Contains(line, step.at) {
				once.Do(func() { close(reached) })
			}
		}, "leave", "--config", nd.configPath)
		select {
		case <-reached:
			_ = leave.cmd.Process.Kill()
		case <-leave.done:
			t.Fatalf("leave on node %d ended before it reached %q (exit %v):\n%s", step.node, step.at, leave.Err(), leave.tail(20))
		case <-time.After(2 * time.Minute):
			t.Fatalf("leave on node %d did not reach %q:\n%s", step.node, step.at, leave.tail(20))
		}
		<-leave.done
		marker, _ := os.ReadFile(nd.dataDir + ".left")
		t.Logf("node %d: leave killed at %q; marker: %q", step.node, step.at, strings.TrimSpace(string(marker)))

		again := c.spawn("leave-node"+strconv.Itoa(step.node), nil, nil, "leave", "--config", nd.configPath)
		if code, err := again.wait(2 * time.Minute); err != nil || code != 0 {
			t.Fatalf("second leave on node %d: exit %d, %v:\n%s", step.node, code, err, again.tail(20))
		}
		out, _ := os.ReadFile(again.log)
		t.Logf("second leave on node %d:\n%s", step.node, strings.TrimSpace(string(out)))
		if m, ok := sidefile.ReadLeaveMarker(nd.dataDir); !ok || m.State != sidefile.Left {
			t.Errorf("node %d's leave marker = %+v (present: %v), want it to say left", step.node, m, ok)
		}
		if _, err := os.Stat(nd.dataDir); !os.IsNotExist(err) {
			t.Errorf("node %d's data dir is still there after leave: %v", step.node, err)
		}
		if code, err := nd.proc.wait(time.Minute); err != nil || code != exitConfig {
			t.Fatalf("node %d's agent after leave: exit %d, %v (want %d)\n%s", step.node, code, err, exitConfig, nd.describe())
		}
		remaining = remaining[:len(remaining)-1]
		c.waitMembers(cli, time.Minute, remaining...)

		// It stays out: a restarted agent refuses to run.
		nd.start()
		if code, err := nd.proc.wait(30 * time.Second); err != nil || code != exitConfig {
			t.Fatalf("node %d's agent restarted after leave: exit %d, %v (want %d, staying out)\n%s", step.node, code, err, exitConfig, nd.describe())
		}
		if !strings.Contains(nd.proc.tail(5), "left the cluster") {
			t.Errorf("node %d's restarted agent does not say it left the cluster:\n%s", step.node, nd.proc.tail(5))
		}
	}
	c.proof(w, cli, remaining...)
}
