package fault_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/internal/testcluster"
)

// TestRemovalReplannedAfterSnapshot: node 3 goes down (killed, or frozen:
// a hung VM); a fresh node 4 (in this process, so that its join can be
// paused) finds it down for longer than the grace and plans its removal.
// While node 4's snapshot before the removal "runs" (paused right after it),
// node 3 comes back (its agent restarted with its data, or thawed) and its
// member answers again. Node 4 must plan again on a fresh survey under the
// lock and not remove it: it waits as a standby, and node 3 keeps its member
// ID throughout.
func TestRemovalReplannedAfterSnapshot(t *testing.T) {
	t.Parallel()
	for _, fault := range []struct {
		name       string
		down, back func(*node)
	}{
		{"killed", (*node).kill, (*node).start},
		{"frozen", (*node).freeze, (*node).thaw},
	} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			removalReplanned(t, fault.down, fault.back)
		})
	}
}

func removalReplanned(t *testing.T, down, back func(*node)) {
	c := newCluster(t)
	c.useV3Discovery(3)
	n := c.form(3)
	cli := c.client(1, 2)
	all := c.client(1, 2, 3)
	before := c.waitMembers(all, time.Minute, 1, 2, 3)
	w := lintest.Start(t, cli, 2)

	down(n[3])
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.e.Grace = c.grace
	_, cfg := c.e.WriteConfig(4, c.e.NodeConfig(4, c.size))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n4 := c.e.StartAgent(ctx, 4, cfg, func(o *agent.Options) {
		o.JoinHook = func(step membership.HookStep) error {
			if step != membership.HookSnapshotted {
				return nil
			}
			first := false
			once.Do(func() { first = true; close(paused) })
			if first {
				select {
				case <-resume:
				case <-ctx.Done():
				}
			}
			return nil
		}
	})
	select {
	case <-paused:
	case <-time.After(joinTimeout):
		t.Fatalf("node 4 never took the snapshot before a change: %s %s", n4.Report().Phase, n4.Report().Message)
	}
	if r := n4.Report(); !strings.Contains(r.Message, "removing member "+c.name(3)) {
		close(resume)
		t.Fatalf("node 4 paused after a snapshot for %q, want the removal of %s", r.Message, c.name(3))
	}
	t.Logf("node 4 paused after its snapshot before %q; node 3 comes back", n4.Report().Message)

	// Node 3 back; node 4's snapshot "ends" once it answers.
	back(n[3])
	c.waitMembers(all, time.Minute, 1, 2, 3)
	close(resume)

	// From here on member 3 must stay, with its ID.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var watchWG sync.WaitGroup
	var mu sync.Mutex
	var missing []string
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		for watchCtx.Err() == nil {
			mctx, mcancel := context.WithTimeout(watchCtx, 3*time.Second)
			ms, err := testcluster.Members(mctx, cli)
			mcancel()
			if m, ok := ms[c.name(3)]; err == nil && (!ok || m.ID != before[c.name(3)].ID) {
				mu.Lock()
				missing = append(missing, fmt.Sprintf("%s: member 3 is %+v (present %v)", time.Now().Format(time.TimeOnly), m, ok))
				mu.Unlock()
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stopWatch(); watchWG.Wait() })

	deadline := time.Now().Add(time.Minute)
	for n4.Report().Phase != report.PhaseStandby {
		if time.Now().After(deadline) {
			t.Fatalf("node 4 is not a standby a minute after the snapshot: %s %s (decisions %s)",
				n4.Report().Phase, n4.Report().Message, testcluster.Decisions(n4.Report()))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("node 4: %s", n4.Report().Message)
	time.Sleep(2 * time.Second) // a few more of node 4's plans: still nothing removed
	n4.Stop()

	after := c.proof(w, all, 1, 2, 3)
	stopWatch()
	watchWG.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(missing) > 0 {
		t.Errorf("member 3 was removed although it answered again before the removal:\n%s", strings.Join(missing, "\n"))
	}
	if after[c.name(3)].ID != before[c.name(3)].ID {
		t.Errorf("member 3 has ID %x, was %x", after[c.name(3)].ID, before[c.name(3)].ID)
	}
	if slices.ContainsFunc(n4.Report().Decisions, func(d report.Decision) bool { return d.Action == report.ActionRemoveMember }) {
		t.Errorf("node 4 removed a member: %s", testcluster.Decisions(n4.Report()))
	}
}
