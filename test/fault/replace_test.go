package fault_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/internal/testcluster"
)

// TestFrozenMemberNotRemovedBeforeGrace: in a 5-node cluster one node dies
// for good and another freezes (SIGSTOP: a hung VM) for less than the grace
// period while a replacement starts. The replacement must take the dead
// member's slot after the grace, and the frozen member must never be removed.
func TestFrozenMemberNotRemovedBeforeGrace(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = 45 * time.Second
	c.useV3Discovery(5)
	n := c.form(5)
	cli := c.client(1, 2, 3)
	before := c.waitMembers(cli, time.Minute, 1, 2, 3, 4, 5)
	w := lintest.Start(t, cli, 2)

	// Watch the member list throughout: member 4 must never disappear.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var watchWG sync.WaitGroup
	var mu sync.Mutex
	var missing []string
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		for watchCtx.Err() == nil {
			ctx, cancel := context.WithTimeout(watchCtx, 3*time.Second)
			ms, err := testcluster.Members(ctx, cli)
			cancel()
			if err == nil {
				if m, ok := ms[c.name(4)]; !ok || m.ID != before[c.name(4)].ID || m.Learner {
					mu.Lock()
					missing = append(missing, fmt.Sprintf("%s: member 4 is %+v (present %v)", time.Now().Format(time.TimeOnly), m, ok))
					mu.Unlock()
				}
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stopWatch(); watchWG.Wait() })

	n[5].kill()
	killedAt := time.Now()
	n[4].freeze()
	n6 := c.node(6)
	n6.start()
	time.Sleep(time.Until(killedAt.Add(30 * time.Second)))
	n[4].thaw()
	t.Log("node 4 continued after 30s frozen")

	n6.waitReady(joinTimeout)
	after := c.proof(w, cli, 1, 2, 3, 4, 6)
	stopWatch()
	watchWG.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(missing) > 0 {
		t.Errorf("the frozen member 4 was removed or changed (never allowed: it was down for less than the grace period):\n%s", strings.Join(missing, "\n"))
	}
	if after[c.name(4)].ID != before[c.name(4)].ID {
		t.Errorf("member 4 has ID %x, was %x", after[c.name(4)].ID, before[c.name(4)].ID)
	}
	r := n6.report()
	removed5 := false
	for _, d := range r.Decisions {
		if d.Action != "remove-member" {
			continue
		}
		if strings.Contains(d.Reason, c.name(4)) {
			t.Errorf("node 6 decided to remove the frozen member 4: %s", d.Reason)
		}
		if strings.Contains(d.Reason, c.name(5)) {
			removed5 = true
			if early := killedAt.Add(c.grace).Sub(d.At); early > time.Second {
				t.Errorf("member 5 removed %s before its grace period of %s had passed (killed %s, removed %s)",
					early, c.grace, killedAt.Format(time.TimeOnly), d.At.Format(time.TimeOnly))
			}
		}
	}
	if !removed5 {
		t.Errorf("node 6's decisions do not include removing member 5: %s", testcluster.Decisions(r))
	}
	if !slices.ContainsFunc(r.Decisions, func(d report.Decision) bool { return d.Action == report.ActionPromote }) {
		t.Errorf("node 6 was not promoted from learner (decisions %s)", testcluster.Decisions(r))
	}
}

// TestReplacedWhileDownRecovers: a node is down long enough to be replaced;
// the replacement later leaves, and the old node comes back with its old
// data. etcd tells it that its member was removed: the agent must move the
// data aside (never delete it) and rejoin as a new member.
func TestReplacedWhileDownRecovers(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useV3Discovery(3)
	n := c.form(3)
	cli := c.client(1, 2, 3)
	before := c.waitMembers(cli, time.Minute, 1, 2, 3)
	w := lintest.Start(t, cli, 2)

	n[3].kill()
	n4 := c.node(4)
	n4.start()
	n4.waitReady(joinTimeout)
	cli.SetEndpoints(c.endpoints(1, 2, 4)...)
	c.waitMembers(cli, time.Minute, 1, 2, 4)

	// Node 4 leaves (frees the slot); its agent exits and stays out.
	leave := c.spawn("leave-node4", nil, nil, "leave", "--config", n4.configPath)
	if code, err := leave.wait(2 * time.Minute); err != nil || code != 0 {
		t.Fatalf("leave on node 4: exit %d, %v:\n%s", code, err, leave.tail(20))
	}
	if code, err := n4.proc.wait(time.Minute); err != nil || code != exitConfig {
		t.Fatalf("node 4's agent after leave: exit %d, %v (want %d)\n%s", code, err, exitConfig, n4.describe())
	}
	cli.SetEndpoints(c.endpoints(1, 2)...)
	c.waitMembers(cli, time.Minute, 1, 2)

	// Node 3 comes back with the data of a member that was removed.
	n[3].start()
	n[3].waitReady(joinTimeout)
	after := c.proof(w, cli, 1, 2, 3)
	if after[c.name(3)].ID == before[c.name(3)].ID {
		t.Errorf("node 3 kept member ID %x: its member was removed, it must rejoin as a new one", after[c.name(3)].ID)
	}
	aside, _ := filepath.Glob(n[3].dataDir + ".removed-*")
	if len(aside) != 1 {
		t.Fatalf("want one data dir moved aside as %s.removed-<UTC timestamp>, found %q", n[3].dataDir, aside)
	}
	if _, err := time.Parse("20060102T150405Z", strings.TrimPrefix(aside[0], n[3].dataDir+".removed-")); err != nil {
		t.Logf("note: moved-aside name %s: timestamp not in the form 20060102T150405Z (%v)", filepath.Base(aside[0]), err)
	}
	wals, _ := filepath.Glob(filepath.Join(aside[0], "member", "wal", "*.wal"))
	if len(wals) == 0 {
		t.Errorf("the moved-aside dir %s holds no WAL", aside[0])
	}
	if _, err := os.Stat(filepath.Join(n[3].dataDir, "member", "wal")); err != nil {
		t.Errorf("node 3's data dir has no WAL after rejoining: %v", err)
	}
}
