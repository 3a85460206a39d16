package fault_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/internal/testcluster"
	"github.com/etcd-agent/etcd-agent/pki"
)

// recoverGrace is the nodes' deadMemberGrace. No member needs removing
// after a recovery (the new cluster holds only its first member), and a
// short grace would let one joiner remove the other's learner while it still
// catches up (a learner answers nothing before it has caught up).
const recoverGrace = 30 * time.Second

// recoverTimeout bounds `etcd-agent recover` from request to a healthy
// new cluster.
const recoverTimeout = 5 * time.Minute

// TestRecoverFromMember: 2 of 3 nodes are lost for good (killed, disks
// gone), one after the other, under a writer. Two replacement instances
// (new IPs) boot and wait: no quorum. `etcd-agent recover --from-member` on
// the survivor builds a new cluster from its data; the replacements join it
// by themselves. Every acknowledged write is there, the history is
// linearizable, the cluster ID is new and the revision bumped.
func TestRecoverFromMember(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.useV3Discovery(3)
	recoverFromMember(t, c)
}

// TestRecoverFromMemberPodman is the same with etcd in containers (the
// production runtime): the agent removes the survivor's container before it
// works on the data, and starts a new one for the new member.
func TestRecoverFromMemberPodman(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.containerPrefix = "etcd-agent-recover-"
	c.usePodman()
	c.useV3Discovery(3)
	recoverFromMember(t, c)
}

func recoverFromMember(t *testing.T, c *cluster) {
	n := c.form(3)
	cli := c.client(1, 2, 3)
	c.waitMembers(cli, time.Minute, 1, 2, 3)
	oldID := clusterID(t, cli)
	w := lintest.Start(t, cli, 2)
	waitAcked(t, w, 20)

	n[3].powerCut()
	n[3].wipe()
	waitAcked(t, w, w.Acked()+20) // acknowledged by nodes 1 and 2 only
	put(t, cli, keyK, "v1")

	// Nodes 1 and 2 still make a quorum: recover must refuse and change
	// nothing.
	refused := c.spawn("recover-refused-node1", nil, nil, "recover", "--config", n[1].configPath, "--from-member")
	if code, err := refused.wait(2 * time.Minute); err != nil || code != exitRefused || !strings.Contains(refused.tail(5), "still has a quorum") {
		t.Fatalf("recover while nodes 1 and 2 make a quorum: exit %d, %v, want exit 3 and a refusal naming the quorum:\n%s", code, err, refused.tail(20))
	}
	t.Logf("refused while a quorum answers:\n%s", refused.tail(3))
	waitAcked(t, w, w.Acked()+10) // the cluster goes on
	n[2].powerCut()
	n[2].wipe()
	acked := w.Acked()
	t.Logf("nodes 2 and 3 lost for good; %d writes acknowledged before the quorum loss", acked)

	// The replacements boot before anyone recovers: they wait.
	n4, n5 := c.node(4), c.node(5)
	n4.start()
	n5.start()
	time.Sleep(3 * time.Second)
	for _, nd := range []*node{n4, n5} {
		if r, ok := nd.current(); ok && r.Ready {
			t.Fatalf("node %d is ready before the recovery: %s", nd.i, nd.describe())
		}
	}

	start := time.Now()
	out := runRecover(t, c, n[1], "--from-member", "--lost", c.name(2)+","+c.name(3))
	recovered := time.Since(start)
	cli.SetEndpoints(c.endpoints(1, 4, 5)...)
	c.waitMembers(cli, joinTimeout, 1, 4, 5)
	toVoters := time.Since(start)
	t.Logf("FIGURE recover --from-member: new cluster healthy after %s; 3 healthy voters after %s (from the recover command's start)", recovered.Round(time.Millisecond), toVoters.Round(time.Millisecond))
	if !strings.Contains(out, "no quorum answers") {
		t.Errorf("recover's output does not show the quorum check:\n%s", out)
	}

	c.proof(w, cli, 1, 4, 5)
	if v, found, err := getValue(cli, keyK, 10*time.Second); err != nil || !found || v != "v1" {
		t.Fatalf("get %s = %q (found %v, err %v), want v1", keyK, v, found, err)
	}
	checkNewCluster(t, cli, oldID)
}

// TestRecoveredClusterOldMembersMoveAside: nodes 2 and 3 go down with their
// data (2 of 3: no quorum), the survivor recovers; then 2 and 3 come back
// with the old cluster's data. Together they would be a quorum of the old
// cluster, with writes the new one has since taken missing: they must not
// start it. Their agents find the recovery in discovery, move the old data
// aside and join the new cluster as learners.
func TestRecoveredClusterOldMembersMoveAside(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.useV3Discovery(3)
	oldMembersMoveAside(t, c)
}

// TestRecoveredClusterOldMembersMoveAsideStatic is the same with a static
// founder list: no registry records the recovery, so the old members learn
// it from the new cluster itself, which answers at a founder's address and
// holds the recovery record.
func TestRecoveredClusterOldMembersMoveAsideStatic(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.useStaticDiscovery(3)
	oldMembersMoveAside(t, c)
}

func oldMembersMoveAside(t *testing.T, c *cluster) {
	n := c.form(3)
	cli := c.client(1, 2, 3)
	before := c.waitMembers(cli, time.Minute, 1, 2, 3)
	oldID := clusterID(t, cli)
	w := lintest.Start(t, cli, 2)
	waitAcked(t, w, 20)
	n[3].kill()
	waitAcked(t, w, w.Acked()+20)
	n[2].kill()

	// The operator declares 2 and 3 gone (their agents do not answer);
	// they come back later all the same.
	runRecover(t, c, n[1], "--from-member", "--lost", c.name(2), "--lost", c.name(3))
	cli.SetEndpoints(c.endpoints(1)...)
	put(t, cli, keyK, "after-recovery") // only the new cluster has it

	n[2].start()
	n[3].start()
	n[2].waitReady(joinTimeout)
	n[3].waitReady(joinTimeout)
	after := c.proof(w, cli, 1, 2, 3)
	if v, found, err := getValue(cli, keyK, 10*time.Second); err != nil || !found || v != "after-recovery" {
		t.Fatalf("get %s = %q (found %v, err %v), want after-recovery", keyK, v, found, err)
	}
	checkNewCluster(t, cli, oldID)
	if c.discURL != "" {
		waitRecordedEndpoints(t, c, c.endpoints(1, 2, 3))
	}
	for _, i := range []int{2, 3} {
		if after[c.name(i)].ID == before[c.name(i)].ID {
			t.Errorf("node %d kept member ID %x: it must join the new cluster as a new member", i, before[c.name(i)].ID)
		}
		r := n[i].report()
		for _, d := range r.Decisions {
			if d.Action == report.ActionRestart {
				t.Errorf("node %d restarted its member of the replaced cluster (decision %q): it must move that data aside first", i, d.Reason)
			}
		}
		if !slices.ContainsFunc(r.Decisions, func(d report.Decision) bool {
			return d.Action == report.ActionMoveAside && strings.Contains(d.Reason, "replaced")
		}) {
			t.Errorf("node %d has no move-aside decision naming the recovery: %s", i, testcluster.Decisions(r))
		}
		aside, _ := filepath.Glob(n[i].dataDir + ".removed-*")
		if len(aside) != 1 {
			t.Fatalf("node %d: want its old data moved aside once, found %q", i, aside)
		}
		id, err := datadir.ReadIdentity(aside[0])
		if err != nil || id.ClusterID != oldID {
			t.Errorf("node %d: the moved-aside data %s holds cluster %x (%v), want the old cluster %x", i, aside[0], id.ClusterID, err, oldID)
		}
	}
}

// runRecover runs `etcd-agent recover` with args on node nd and returns its
// output; it must succeed.
func runRecover(t *testing.T, c *cluster, nd *node, args ...string) string {
	t.Helper()
	p := c.spawn(fmt.Sprintf("recover-node%d", nd.i), c.env, nil, append([]string{"recover", "--config", nd.configPath}, args...)...)
	code, err := p.wait(recoverTimeout)
	b, _ := os.ReadFile(p.log)
	if err != nil || code != 0 {
		t.Fatalf("recover %v on node %d: exit %d, %v:\n%s\n%s", args, nd.i, code, err, b, nd.describe())
	}
	t.Logf("recover %v on node %d:\n%s", args, nd.i, strings.TrimSpace(string(b)))
	return string(b)
}

// waitAcked waits until the writer has at least want acknowledged writes.
func waitAcked(t *testing.T, w *lintest.Writer, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for w.Acked() < want {
		if time.Now().After(deadline) {
			t.Fatalf("writer: %d acknowledged writes after a minute, want %d", w.Acked(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func clusterID(t *testing.T, cli *clientv3.Client) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.GetClusterId()
}

// checkNewCluster checks that the cluster has a new ID, its revision was
// bumped (etcd's recovery guide: watchers must never see it go back) and
// the recovery is recorded inside it.
func checkNewCluster(t *testing.T, cli *clientv3.Client, oldID uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/_etcd-agent/recovery")
	if err != nil {
		t.Fatal(err)
	}
	if id := resp.Header.GetClusterId(); id == oldID {
		t.Errorf("the recovered cluster kept the lost cluster's ID %x", id)
	}
	if rev := resp.Header.GetRevision(); rev < 1_000_000_000 {
		t.Errorf("revision %d after the recovery: want it bumped above 1e9", rev)
	}
	if len(resp.Kvs) == 0 || !strings.Contains(string(resp.Kvs[0].Value), fmt.Sprintf("%x", oldID)) {
		t.Errorf("the new cluster's recovery record %q does not name the replaced cluster %x", resp.Kvs, oldID)
	}
	t.Logf("new cluster %x (was %x), revision %d", resp.Header.GetClusterId(), oldID, resp.Header.GetRevision())
}

// TestRecoverAgentKilledMidway: `recover` runs while the survivor's agent
// is down (the command checks the quorum itself and leaves the request);
// the agent starts and picks it up, and is killed (SIGKILL, its embedded
// etcd with it) in the middle of the recovery, once after the throw-away
// copy started and once after the new cluster's ID was recorded.
// Restarted, it resumes the same recovery — same token, same new cluster —
// and `recover`, still following, reports it done.
func TestRecoverAgentKilledMidway(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.useV3Discovery(3)
	n := c.form(3)
	cli := c.client(1, 2, 3)
	c.waitMembers(cli, time.Minute, 1, 2, 3)
	oldID := clusterID(t, cli)
	w := lintest.Start(t, cli, 2)
	waitAcked(t, w, 20)
	n[3].kill()
	n[3].wipe()
	waitAcked(t, w, w.Acked()+20)
	n[2].kill()
	n[2].wipe()

	// The agent is down when recover runs: the command checks the quorum
	// itself and leaves the request for the agent's start.
	n[1].kill()
	steps := []string{"the request is written", "throw-away copy", "  new cluster "}
	next := make(chan struct{}, len(steps))
	var seen int
	rec := c.spawn("recover-killed-node1", nil, func(line string) {
		if seen < len(steps) && strings.Contains(line, steps[seen]) && !strings.Contains(line, "healthy") {
			seen++
			next <- struct{}{}
		}
	}, "recover", "--config", n[1].configPath, "--from-member", "--lost", c.name(2)+","+c.name(3))
	select {
	case <-next:
	case <-rec.done:
		t.Fatalf("recover without a running agent ended at once:\n%s", rec.tail(30))
	case <-time.After(time.Minute):
		t.Fatalf("recover without a running agent did not write the request:\n%s", rec.tail(30))
	}
	n[1].start()
	for i, step := range steps[1:] {
		select {
		case <-next:
		case <-rec.done:
			t.Fatalf("recover ended before %q:\n%s", step, rec.tail(30))
		case <-time.After(recoverTimeout):
			t.Fatalf("recover did not reach %q:\n%s", step, rec.tail(30))
		}
		n[1].kill()
		t.Logf("node 1's agent killed at %q (kill %d)", step, i+1)
		n[1].start()
	}
	if code, err := rec.wait(recoverTimeout); err != nil || code != 0 {
		t.Fatalf("recover after the agent was killed twice: exit %d, %v:\n%s\n%s", code, err, rec.tail(40), n[1].describe())
	}
	t.Logf("recover:\n%s", rec.tail(40))
	n4 := c.node(4)
	n4.start()
	n4.waitReady(joinTimeout)
	c.proof(w, cli, 1, 4)
	checkNewCluster(t, cli, oldID)
	aside, _ := filepath.Glob(n[1].dataDir + ".removed-*")
	if len(aside) != 1 {
		t.Errorf("want the old data moved aside once, found %q", aside)
	}
}

// waitRecordedEndpoints waits until the registry's recovery record names
// want as the recovered cluster's endpoints: the joiners keep it in step, so
// a later recovery looks for this cluster before it may replace it.
func waitRecordedEndpoints(t *testing.T, c *cluster, want []string) {
	t.Helper()
	tlsCfg, err := pki.ClientTLS(c.e.TestPKI, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	d := &discovery.V3{Endpoints: []string{c.discURL}, Token: c.token, TLS: tlsCfg}
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rec, _, err := d.Recovery(ctx)
		cancel()
		if err == nil && rec != nil && slices.Equal(rec.Endpoints, want) {
			t.Logf("the registry's %s names its members %v", rec, rec.Endpoints)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovery record %+v (%v): want endpoints %v", rec, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
