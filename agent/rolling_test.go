package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/pki"
)

// The rolling-change scenarios run etcd in containers on the rootful test
// Podman socket, the way a fleet gets a change: every node's config file
// changes and every agent restarts at once.

const (
	image36 = "gcr.io/etcd-development/etcd:v3.6.16" // make etcd-v36-image
	image37 = "gcr.io/etcd-development/etcd:v3.7.3"  // make image
)

// TestRollingQuotaChange: three agents get a new etcd.quotaBackendBytes at
// once while a writer runs. The members restart one at a time (never two
// together), each runs with the new quota afterwards, no acknowledged write
// is lost, the history is linearizable and the members' hashes agree.
func TestRollingQuotaChange(t *testing.T) {
	t.Parallel()
	r := newRolling(t, withQuota(64<<20))
	w := startWriter(t, r.cli, 2)
	time.Sleep(2 * time.Second)

	r.restartAll(withQuota(128 << 20))
	r.waitApplied(3*time.Minute, func(st *clientv3.StatusResponse) bool { return st.DbSizeQuota == 128<<20 }, "quota 128MiB")
	r.assertOneAtATime(3)

	w.verify(t, r.cli)
	lintest.HashKVEqual(t, r.cli, r.endpoints)
}

// TestRollingQuotaRaiseUnderNOSPACE: the database fills its 64 MiB quota
// and etcd raises NOSPACE, which refuses every write, the membership lock's
// included. Every node gets a 256 MiB quota at once; the agents (not ready:
// NOSPACE) still raise it, one member at a time in member ID order with no
// lock, and once every member runs with it the alarm is disarmed (by the
// test, if the agents' NOSPACE handling has not) and writes succeed again.
// No acknowledged write is lost, the history is linearizable and the
// members' hashes agree.
func TestRollingQuotaRaiseUnderNOSPACE(t *testing.T) {
	t.Parallel()
	r := newRolling(t, withQuota(64<<20))
	w := startWriter(t, r.cli, 2)
	time.Sleep(2 * time.Second)
	fillUntilNoSpace(t, r.cli)

	r.restartAllNotReady(withQuota(256 << 20))
	r.waitApplied(4*time.Minute, func(st *clientv3.StatusResponse) bool { return st.DbSizeQuota == 256<<20 }, "quota 256MiB")
	r.assertOneAtATime(3)

	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	alarms, err := r.cli.AlarmList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The agents' own NOSPACE handling may have disarmed it already, the
	// database being under the new quota now.
	for _, al := range alarms.Alarms {
		if _, err := r.cli.AlarmDisarm(ctx, (*clientv3.AlarmMember)(al)); err != nil {
			t.Fatalf("disarm %v: %v", al, err)
		}
	}
	for _, n := range r.nodes {
		n.waitReady(t, readyTimeout)
	}
	if _, err := r.cli.Put(ctx, "/_rolling-test/after", "ok"); err != nil {
		t.Fatalf("a write after the quota raise and the disarm: %v", err)
	}

	w.verify(t, r.cli)
	lintest.HashKVEqual(t, r.cli, r.endpoints)
}

// fillUntilNoSpace writes 1 MiB values until etcd refuses a write with
// "database space exceeded" and lists the NOSPACE alarm.
func fillUntilNoSpace(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	fillUntilNoSpaceAs(t, cli, "")
}

// fillUntilNoSpaceAs is fillUntilNoSpace with its keys named
// /_rolling-test/fill/<tag><n>, so a second fill adds data.
func fillUntilNoSpaceAs(t *testing.T, cli *clientv3.Client, tag string) {
	t.Helper()
	value := strings.Repeat("x", 1<<20)
	for i := 0; ; i++ {
		if i > 400 {
			t.Fatal("no NOSPACE after 400 MiB of writes")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := cli.Put(ctx, fmt.Sprintf("/_rolling-test/fill/%s%04d", tag, i), value)
		cancel()
		if err != nil && strings.Contains(err.Error(), "database space exceeded") {
			t.Logf("NOSPACE after %d MiB", i)
			break
		}
		if err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alarms, err := cli.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) == 0 {
		t.Fatalf("alarms after NOSPACE: %v %v", alarms, err)
	}
}

// TestRollingUpgrade: a cluster formed on etcd v3.6 is upgraded to v3.7.3
// by changing etcd.image in every node's config at once, under a writer.
// The members restart one at a time, the cluster version becomes 3.7, and
// then a change back to v3.6 (a downgrade without etcd's downgrade
// procedure) is refused: reported by every agent with its reason, and no
// container changes. Once the operator enables etcd's downgrade to 3.6, the
// same change rolls out, one member at a time, to cluster version 3.6. Every acknowledged write is read back, the history is
// linearizable and the members' hashes agree.
func TestRollingUpgrade(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-node Podman scenario")
	}
	requireImage(t, image36, "make etcd-v36-image")
	r := newRolling(t, withImage(image36))
	r.waitApplied(time.Minute, func(st *clientv3.StatusResponse) bool { return st.Version == "3.6.16" }, "etcd 3.6.16")
	w := startWriter(t, r.cli, 2)
	time.Sleep(2 * time.Second)

	r.restartAll(withImage(image37))
	r.waitApplied(4*time.Minute, func(st *clientv3.StatusResponse) bool { return st.Version == "3.7.3" }, "etcd 3.7.3")
	r.assertOneAtATime(3)
	r.waitClusterVersion("3.7.0", 2*time.Minute)

	// Back to v3.6: refused on every node, nothing restarts.
	before := r.containers()
	r.restartAll(withImage(image36))
	deadline := time.Now().Add(time.Minute)
	for {
		var waiting []string
		for _, n := range r.nodes {
			c := n.agent.Report().EtcdChange
			if c.State != report.ChangeRefused {
				waiting = append(waiting, fmt.Sprintf("node %d: %q %q", n.i, c.State, c.Reason))
			} else if !strings.Contains(c.Reason, "downgrade") || !strings.Contains(c.Change, image36) {
				t.Errorf("node %d refused %q for %q, want a downgrade reason naming %s", n.i, c.Change, c.Reason, image36)
			}
		}
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the downgrade was not refused everywhere within a minute: %v", waiting)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // a few more change checks: still refused, nothing restarted
	for _, n := range r.nodes {
		rep := n.agent.Report()
		if rep.EtcdChange.State != report.ChangeRefused {
			t.Errorf("node %d: change %q, want refused", n.i, rep.EtcdChange.State)
		}
		if rep.EtcdImage != image37 {
			t.Errorf("node %d runs %q, want %s", n.i, rep.EtcdImage, image37)
		}
		if !slices.ContainsFunc(rep.Problems, func(p problem.Problem) bool {
			return p.Code == problem.EtcdChangeRefused.Code && strings.Contains(p.Text, "downgrade")
		}) {
			t.Errorf("node %d problems %+v: no %s naming the downgrade", n.i, rep.Problems, problem.EtcdChangeRefused.Code)
		}
		for _, d := range rep.Decisions {
			if d.Action == report.ActionChangeRestarted || d.Action == report.ActionChangeRestart {
				t.Errorf("node %d restarted for a refused change: %s %s", n.i, d.Action, d.Reason)
			}
		}
		t.Logf("node %d STATUS: %s", n.i, rep.Message)
	}
	r.waitApplied(10*time.Second, func(st *clientv3.StatusResponse) bool { return st.Version == "3.7.3" }, "etcd still 3.7.3")
	if after := r.containers(); !slices.Equal(after, before) {
		t.Errorf("containers changed under a refused change: before %v, after %v", before, after)
	}

	// etcd's downgrade procedure, as an operator runs it: the same refused
	// change now rolls out by itself, one member at a time.
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	for _, action := range []clientv3.DowngradeAction{clientv3.DowngradeValidate, clientv3.DowngradeEnable} {
		if _, err := r.cli.Downgrade(ctx, action, "3.6"); err != nil {
			t.Fatalf("downgrade %v 3.6: %v", action, err)
		}
	}
	r.waitApplied(4*time.Minute, func(st *clientv3.StatusResponse) bool { return st.Version == "3.6.16" }, "etcd 3.6.16 after the downgrade procedure")
	r.assertOneAtATime(3)
	r.waitClusterVersion("3.6.0", 2*time.Minute)

	w.verify(t, r.cli)
	lintest.HashKVEqual(t, r.cli, r.endpoints)
}

// TestRollingChangeRolledBack: every node gets an image that cannot run the
// member (etcd v3.6's binary tagged v3.7.99: the version rules allow it,
// but etcd v3.6 refuses to start in a v3.7 cluster). The first member to
// restart with it is not healthy in time; its agent rolls it back to
// v3.7.3 and records the failure in the cluster, so no other member tries
// it. Every node reports the change as failed, every member runs v3.7.3, no
// acknowledged write is lost, the history is linearizable and the hashes
// agree.
func TestRollingChangeRolledBack(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-node Podman scenario")
	}
	requireImage(t, image36, "make etcd-v36-image")
	const broken = "localhost/etcd-rolling-broken:v3.7.99"
	tagImage(t, image36, broken)
	r := newRollingWith(t, nil, func(o *agent.Options) { o.ChangeReadyTimeout = 20 * time.Second })
	r.waitClusterVersion("3.7.0", 2*time.Minute)
	w := startWriter(t, r.cli, 2)
	time.Sleep(2 * time.Second)

	r.restartAll(withImage(broken))
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var waiting []string
		for _, n := range r.nodes {
			if c := n.agent.Report().EtcdChange; c.State != report.ChangeFailed {
				waiting = append(waiting, fmt.Sprintf("node %d: %q %q", n.i, c.State, c.Reason))
			}
		}
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed change was not reported everywhere within 3 minutes: %v", waiting)
		}
		time.Sleep(time.Second)
	}
	rolledBack := 0
	for _, n := range r.nodes {
		rep := n.agent.Report()
		for _, d := range rep.Decisions {
			switch d.Action {
			case report.ActionRollback, report.ActionRolledBack:
				t.Logf("node %d %s: %s", n.i, d.Action, d.Reason)
				if d.Action == report.ActionRolledBack {
					rolledBack++
				}
			case report.ActionChangeRestarted:
				t.Errorf("node %d restarted with the broken image: %s", n.i, d.Reason)
			}
		}
		if rep.EtcdImage != image37 {
			t.Errorf("node %d runs %q, want %s", n.i, rep.EtcdImage, image37)
		}
		if !slices.ContainsFunc(rep.Problems, func(p problem.Problem) bool { return p.Code == problem.EtcdChangeFailed.Code }) {
			t.Errorf("node %d problems %+v: no %s", n.i, rep.Problems, problem.EtcdChangeFailed.Code)
		}
		t.Logf("node %d: %s %q", n.i, rep.EtcdChange.State, rep.EtcdChange.Reason)
	}
	if rolledBack != 1 {
		t.Errorf("%d members tried the broken image and were rolled back, want exactly 1", rolledBack)
	}
	r.waitApplied(time.Minute, func(st *clientv3.StatusResponse) bool { return st.Version == "3.7.3" }, "etcd 3.7.3 everywhere")

	w.verify(t, r.cli)
	lintest.HashKVEqual(t, r.cli, r.endpoints)
}

// rolling is a 3-node Podman cluster whose configs can be changed.
type rolling struct {
	t         *testing.T
	h         *harness
	ctx       context.Context
	token     string
	nodes     []*node
	endpoints []string
	cli       *clientv3.Client
	// since is when the latest restartAll started the new agents.
	since time.Time
	// edit changes every agent's options; configure every node's config.
	edit      func(*agent.Options)
	configure func(*config.Config)
}

// etcdChange is a change to every node's etcd section.
type etcdChange func(*config.Etcd)

func withQuota(z config.Size) etcdChange { return func(e *config.Etcd) { e.QuotaBackendBytes = z } }
func withImage(ref string) etcdChange    { return func(e *config.Etcd) { e.Image = ref } }

func newRolling(t *testing.T, etcd etcdChange) *rolling {
	return newRollingWith(t, etcd, nil)
}

func newRollingWith(t *testing.T, etcd etcdChange, edit func(*agent.Options)) *rolling {
	return newRollingConfigured(t, etcd, edit, nil)
}

func newRollingConfigured(t *testing.T, etcd etcdChange, edit func(*agent.Options), configure func(*config.Config)) *rolling {
	h := newHarness(t)
	h.usePodman()
	h.e.ContainerPrefix = "etcd-agent-rolling-"
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &rolling{t: t, h: h, ctx: ctx, token: h.startDiscovery(ctx, 3), edit: edit, configure: configure}
	for i := 1; i <= 3; i++ {
		r.nodes = append(r.nodes, r.start(i, etcd))
	}
	for _, n := range r.nodes {
		n.waitReady(t, readyTimeout)
		r.endpoints = append(r.endpoints, n.agent.Report().ClientURL)
	}
	r.cli = reloadingClient(t, r.nodes[0].certDir(), r.endpoints)
	return r
}

// config writes node i's config file with etcd's change (nil: none) in
// its etcd section, and loads it as the agent would.
func (r *rolling) config(i int, etcd etcdChange) *config.Config {
	r.t.Helper()
	cfg := r.h.e.NodeConfig(i, 3)
	cfg.Cluster.Discovery = r.h.v3Discovery(r.token)
	if etcd != nil {
		etcd(&cfg.Etcd)
	}
	if r.configure != nil {
		r.configure(cfg)
	}
	_, loaded := r.h.e.WriteConfig(i, cfg)
	return loaded
}

// start runs node i's agent. Its container outlives the agent, as in
// production: an agent restart adopts it.
func (r *rolling) start(i int, etcd etcdChange) *node {
	return r.h.startWith(r.ctx, i, r.config(i, etcd), func(o *agent.Options) {
		o.StopEtcdOnExit = false
		if r.edit != nil {
			r.edit(o)
		}
	})
}

// restartAll gives every node the etcd change and restarts all agents
// at once, as a fleet-wide config push does.
func (r *rolling) restartAll(etcd etcdChange) {
	r.t.Helper()
	r.restartAllNotReady(etcd)
	for _, n := range r.nodes {
		n.waitReady(r.t, readyTimeout)
	}
}

// restartAllNotReady is restartAll without waiting for READY.
func (r *rolling) restartAllNotReady(etcd etcdChange) {
	r.t.Helper()
	for _, n := range r.nodes {
		n.stop()
	}
	r.since = time.Now()
	for k, n := range r.nodes {
		r.nodes[k] = r.start(n.i, etcd)
	}
}

// waitApplied waits until every member's own status satisfies ok and no
// node has a change waiting or in progress (refused and failed ones stay).
func (r *rolling) waitApplied(limit time.Duration, ok func(*clientv3.StatusResponse) bool, what string) {
	r.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var missing []string
		for k, ep := range r.endpoints {
			ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
			st, err := r.cli.Status(ctx, ep)
			cancel()
			c := r.nodes[k].agent.Report().EtcdChange
			switch {
			case err != nil:
				missing = append(missing, ep+": "+err.Error())
			case !ok(st):
				missing = append(missing, fmt.Sprintf("%s: etcd %s quota %d, change %s %q", ep, st.Version, st.DbSizeQuota, c.State, c.Reason))
			case c.State == report.ChangeWaiting || c.State == report.ChangeRestarting:
				missing = append(missing, fmt.Sprintf("%s: change %s %q", ep, c.State, c.Reason))
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not reached within %s: %v", what, limit, missing)
		}
		time.Sleep(time.Second)
	}
}

// waitClusterVersion waits for etcd's cluster version (the /version
// endpoint the agents read) to be want.
func (r *rolling) waitClusterVersion(want string, limit time.Duration) {
	r.t.Helper()
	tlsCfg, err := pki.ClientTLS(r.nodes[0].certDir(), pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		r.t.Fatal(err)
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	for {
		var v struct {
			Cluster string `json:"etcdcluster"`
		}
		if resp, err := hc.Get(r.endpoints[0] + "/version"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
		}
		if v.Cluster == want {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("cluster version %q, want %q within %s", v.Cluster, want, limit)
		}
		time.Sleep(time.Second)
	}
}

// assertOneAtATime checks that the agents started after the latest
// restartAll restarted want members in all, each from its etcd-change-restart
// decision to its etcd-change-restarted one (healthy and caught up), and never two at
// once.
func (r *rolling) assertOneAtATime(want int) {
	r.t.Helper()
	type span struct {
		node       int
		begin, end time.Time
	}
	var spans []span
	for _, n := range r.nodes {
		var open time.Time
		for _, d := range n.agent.Report().Decisions {
			switch d.Action {
			case report.ActionChangeRestart:
				open = d.At
			case report.ActionChangeRestarted:
				spans = append(spans, span{n.i, open, d.At})
				r.t.Logf("node %d: %s", n.i, d.Reason)
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.begin.Compare(b.begin) })
	if len(spans) != want {
		r.t.Errorf("want %d restarts, got %d: %v", want, len(spans), spans)
	}
	for i := 1; i < len(spans); i++ {
		if spans[i].begin.Before(spans[i-1].end) {
			r.t.Errorf("restarts overlap: node %d %s-%s and node %d %s-%s", spans[i-1].node, spans[i-1].begin.Format(time.StampMilli),
				spans[i-1].end.Format(time.StampMilli), spans[i].node, spans[i].begin.Format(time.StampMilli), spans[i].end.Format(time.StampMilli))
		}
	}
	for _, s := range spans {
		r.t.Logf("node %d restarted at %s (%s after the config push), took %s", s.node, s.begin.Format(time.StampMilli),
			s.begin.Sub(r.since).Round(time.Millisecond), s.end.Sub(s.begin).Round(time.Millisecond))
	}
}

// containers are the nodes' etcd containers, as "name id started-at": the
// same list before and after proves no member was recreated or restarted.
func (r *rolling) containers() []string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	conn, err := bindings.NewConnection(ctx, r.h.podmanSocket)
	if err != nil {
		r.t.Fatalf("connect to %s: %v", r.h.podmanSocket, err)
	}
	var out []string
	for _, n := range r.nodes {
		name := n.cfg.Podman.ContainerName
		c, err := containers.Inspect(conn, name, nil)
		if err != nil {
			r.t.Fatalf("inspect %s: %v", name, err)
		}
		out = append(out, fmt.Sprintf("%s %.12s %s", name, c.ID, c.State.StartedAt.Format(time.RFC3339Nano)))
	}
	return out
}

// tagImage tags image as tag ("repo:tag") in the test socket's storage until
// the test ends.
func tagImage(t *testing.T, image, tag string) {
	t.Helper()
	// The connection's context serves the cleanup too.
	conn, err := bindings.NewConnection(context.Background(), os.Getenv("ETCD_AGENT_TEST_PODMAN_SOCKET"))
	if err != nil {
		t.Fatal(err)
	}
	repo, version, _ := strings.Cut(tag, ":")
	if err := images.Tag(conn, image, version, repo, nil); err != nil {
		t.Fatalf("tag %s as %s: %v", image, tag, err)
	}
	t.Cleanup(func() {
		if err := images.Untag(conn, image, version, repo, nil); err != nil {
			t.Logf("untag %s: %v", tag, err)
		}
	})
}

// requireImage fails the test when the image is not in the test socket's
// storage, naming the command that builds it.
func requireImage(t *testing.T, image, build string) {
	t.Helper()
	sock := os.Getenv("ETCD_AGENT_TEST_PODMAN_SOCKET")
	if sock == "" {
		return // usePodman says what to do
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := bindings.NewConnection(ctx, sock)
	if err != nil {
		t.Fatalf("connect to %s: %v", sock, err)
	}
	ok, err := images.Exists(conn, image, nil)
	if err != nil {
		t.Fatalf("look up image %s: %v", image, err)
	}
	if !ok {
		t.Fatalf("image %s is not in %s's storage: run `%s`", image, sock, build)
	}
}
