package fault_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestRecoverFromMemberNewestWAL: in a 5-member cluster, two followers (C
// and D) go down while the leader and two others (A and B) acknowledge
// writes, key K among them; then the leader and B are lost for good. A and
// C start again: etcd without a quorum never serves its client port, so
// from outside both look dead. (C is killed, not frozen: a frozen member
// finds the leader's appends waiting in its socket buffers when it thaws.) `recover --from-member` on the stale
// node C must be refused naming A (its agent reads its WAL whatever etcd's
// state); on A it keeps every acknowledged write, K included.
func TestRecoverFromMemberNewestWAL(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.grace = recoverGrace
	c.useV3Discovery(5)
	n := c.form(5)
	cli := c.client(1, 2, 3, 4, 5)
	c.waitMembers(cli, time.Minute, 1, 2, 3, 4, 5)
	oldID := clusterID(t, cli)
	w := lintest.Start(t, cli, 2)
	waitAcked(t, w, 20)

	leader := leaderIndex(t, c, cli, 5)
	var others []int
	for i := 1; i <= 5; i++ {
		if i != leader {
			others = append(others, i)
		}
	}
	a, b, stale, gone := others[0], others[1], others[2], others[3]
	t.Logf("leader node %d; A = node %d and B = node %d keep up, C = node %d and D = node %d go down", leader, a, b, stale, gone)

	// Short of the 30 s grace: C and D stay members.
	n[stale].kill()
	n[gone].kill()
	waitAcked(t, w, w.Acked()+10) // acknowledged by the leader, A and B only
	put(t, cli, keyK, "newest")
	waitAcked(t, w, w.Acked()+5)
	n[leader].kill()
	n[b].kill()
	// A and C start again without a quorum.
	n[a].kill()
	n[a].start()
	n[stale].start()
	// A recovery asks every member's agent for its WAL, and one still
	// starting is rightly counted as silent: wait until both serve.
	waitAgentAnswers(t, n[a])
	waitAgentAnswers(t, n[stale])
	acked := w.Acked()
	t.Logf("quorum lost with %d writes acknowledged; K only on the lost leader, B and A", acked)
	lost := c.name(leader) + "," + c.name(b) + "," + c.name(gone)

	refused := c.spawn("recover-stale-node", c.env, nil, "recover", "--config", n[stale].configPath, "--from-member", "--lost", lost)
	code, err := refused.wait(recoverTimeout)
	out := refused.tail(40)
	if err != nil || code != exitRefused || !strings.Contains(out, "member "+c.name(a)+" holds newer entries") ||
		!strings.Contains(out, "recover --from-member` on "+c.name(a)) {
		t.Fatalf("recover --from-member on the stale node %d: exit %d, %v, want exit 3 and a refusal naming node %d (%s):\n%s", stale, code, err, a, c.name(a), out)
	}
	t.Logf("refused on the stale node:\n%s", out)

	start := time.Now()
	runRecover(t, c, n[a], "--from-member", "--lost", lost)
	recovered := time.Since(start)
	for _, i := range []int{leader, b, gone} {
		n[i].start() // back with the lost cluster's data: moved aside, joined anew
	}
	cli.SetEndpoints(c.endpoints(1, 2, 3, 4, 5)...)
	c.waitMembers(cli, joinTimeout, 1, 2, 3, 4, 5)
	t.Logf("FIGURE recover --from-member on the node with the newest WAL: new cluster healthy after %s; 5 voters after %s",
		recovered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	c.proof(w, cli, 1, 2, 3, 4, 5)
	if v, found, err := getValue(cli, keyK, 10*time.Second); err != nil || !found || v != "newest" {
		t.Fatalf("get %s = %q (found %v, err %v), want the acknowledged value newest", keyK, v, found, err)
	}
	checkNewCluster(t, cli, oldID)
}

// leaderIndex is the node (1..count) that leads.
func leaderIndex(t *testing.T, c *cluster, cli *clientv3.Client, count int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= count; i++ {
		st, err := cli.Status(ctx, c.clientURL(i))
		if err != nil {
			continue
		}
		if st.Leader == st.Header.GetMemberId() {
			return i
		}
	}
	t.Fatal("no node leads")
	return 0
}

// waitAgentAnswers waits until nd's running agent (its current process,
// past its certificates stage) accepts connections on the agent API port.
func waitAgentAnswers(t *testing.T, nd *node) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r, ok := nd.current()
		if ok && r.PrivateIP != "" && !slices.Contains([]report.Phase{"", report.PhaseStarting, report.PhaseIdentity, report.PhaseCertificates}, r.Phase) {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(r.PrivateIP, strconv.Itoa(config.DefaultAgentAPIPort)), time.Second)
			if err == nil {
				conn.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d's agent does not serve its agent API after a minute: %s", nd.i, nd.describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
