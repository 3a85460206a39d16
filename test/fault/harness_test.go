// Package fault_test runs fault scenarios against real etcd-agent processes:
// every node is `etcd-agent run --config node.yaml` (bin/etcd-agent, built by
// `make build`), discovery is `etcd-agent discovery serve`, and the test
// kills, freezes, restarts and wipes nodes the way a machine or an operator
// would. Every scenario keeps a writer running throughout and ends with the
// same proof: every acknowledged write read back, the history linearizable,
// HashKV equal on all members, and the expected voters.
package fault_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/internal/testcluster"
)

const (
	// readyTimeout bounds a founding node's start (discovery, certs, etcd).
	readyTimeout = 90 * time.Second
	// joinTimeout bounds a join: grace period, learner catch-up, promotion.
	joinTimeout = 3 * time.Minute
	// exitConfig is the exit code of a node that must not be restarted
	// (config error, or it left the cluster).
	exitConfig = 78
	// exitRefused is the exit code of a command the agent refused on
	// purpose, nothing changed (recover, leave, fleetlock release).
	exitRefused = 3
)

// repoRoot is the module root, found from the test's working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/etcd-agent/etcd-agent\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot find the etcd-agent module root above the working directory")
		}
		dir = parent
	}
}

// agentBinary is bin/etcd-agent (or ETCD_AGENT_TEST_BIN).
func agentBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("ETCD_AGENT_TEST_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot(t), "bin", "etcd-agent")
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("the fault scenarios run the real binary, and %s is missing or not executable: run `make build` first (or set ETCD_AGENT_TEST_BIN)", bin)
	}
	return bin
}

// cluster is one scenario's world (internal/testcluster): a CA, a
// discovery source, nodes on a loopback /24 of the scenario's own, so
// scenarios run in parallel with each other and with other packages' tests;
// ip(0) is the discovery service and the tester's client certificate,
// nodes are i >= 1.
type cluster struct {
	e      *testcluster.Env
	t      testing.TB
	bin    string
	dir    string
	logDir string
	// testPKI holds server certs for the discovery service and the client
	// certificate the test itself uses.
	testPKI string
	// grace is the nodes' cluster.deadMemberGrace.
	grace time.Duration
	// size is the nodes' cluster.size.
	size    int
	discURL string
	token   string
	// podmanSocket, when set, makes nodes run etcd in containers.
	podmanSocket string
	// configure changes every node's config before it is written; env is
	// added to every node's environment.
	configure func(*config.Config)
	env       []string
	// containerPrefix names the nodes' containers; "": etcd-agent-fault-.
	containerPrefix string

	mu    sync.Mutex
	nodes map[int]*node
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("fault scenario with real processes")
	}
	bin := agentBinary(t)
	e := testcluster.New(t, "fault")
	e.Snapshots = true // the nodes' default
	c := &cluster{e: e, t: t, bin: bin, dir: e.Dir, logDir: e.LogDir, testPKI: e.TestPKI, grace: e.Grace, nodes: map[int]*node{}}
	t.Logf("logs in %s", c.logDir)
	return c
}

func (c *cluster) ip(i int) string        { return c.e.IP(i) }
func (c *cluster) name(i int) string      { return c.e.MemberName(i) }
func (c *cluster) clientURL(i int) string { return c.e.ClientURL(i) }

// ---- processes ----

// proc is one process the test started.
type proc struct {
	*testcluster.Process
	cmd  *exec.Cmd
	log  string
	done <-chan struct{}
}

func wrapProc(p *testcluster.Process) *proc {
	return &proc{Process: p, cmd: p.Cmd, log: p.Log, done: p.Done()}
}

// spawn starts bin with args, stdout and stderr to a fresh log file (and
// to lines, when not nil). The process is killed when the test ends.
func (c *cluster) spawn(name string, env []string, lines func(string), args ...string) *proc {
	c.t.Helper()
	return wrapProc(c.e.Spawn(c.bin, name, env, lines, args...))
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal).
func (p *proc) wait(timeout time.Duration) (int, error) { return p.Wait(timeout) }

// tail is the last n lines of the process's log.
func (p *proc) tail(n int) string { return p.Tail(n) }

// ---- discovery ----

// useV3Discovery runs `etcd-agent discovery serve` on ip(0) and creates a
// token for size founders with `etcd-agent discovery new`.
func (c *cluster) useV3Discovery(size int) {
	c.t.Helper()
	c.size = size
	c.discURL, c.token = c.e.SpawnDiscovery(c.bin, size)
}

// useStaticDiscovery lists nodes 1..size as the founders.
func (c *cluster) useStaticDiscovery(size int) {
	c.size = size
	var idx []int
	for i := 1; i <= size; i++ {
		idx = append(idx, i)
	}
	c.e.Discovery = c.e.StaticDiscovery(idx...)
}

// ---- nodes ----

// node is one agent under test, across its restarts.
type node struct {
	*testcluster.ProcNode
	c          *cluster
	i          int
	dir        string
	configPath string
	dataDir    string
	statusFile string
	// proc is the latest process.
	proc *proc
	// bootstrapSeen: a bootstrap decision was already reported.
	bootstrapSeen bool
}

// node writes node i's config.yaml (from the config types, as `etcd-agent
// local up` does) for the cluster's discovery source, size and grace.
func (c *cluster) node(i int) *node {
	c.t.Helper()
	c.e.Grace = c.grace
	c.e.PodmanSocket = c.podmanSocket
	if c.containerPrefix != "" {
		c.e.ContainerPrefix = c.containerPrefix
	}
	cfg := c.e.NodeConfig(i, c.size)
	if c.configure != nil {
		c.configure(cfg)
	}
	pn := c.e.ProcNode(c.bin, i, cfg)
	n := &node{ProcNode: pn, c: c, i: i, dir: c.e.NodeDir(i), configPath: pn.ConfigPath, dataDir: pn.DataDir, statusFile: pn.StatusFile}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return n
}

func (n *node) containerName() string { return n.c.e.ContainerName(n.i) }

// start runs `etcd-agent run --config` with a fresh sd_notify socket.
func (n *node) start() {
	n.c.t.Helper()
	n.Env = n.c.env
	n.Start()
	n.proc = wrapProc(n.Proc)
}

// kill is SIGKILL to the agent (embedded etcd dies with it; a container
// does not: see powerCut).
func (n *node) kill() { n.Kill() }

// powerCut kills the agent and, on Podman, its etcd container.
func (n *node) powerCut() {
	n.c.t.Helper()
	n.kill()
	if n.c.podmanSocket != "" {
		if out, err := n.c.podman("kill", n.containerName()); err != nil && !strings.Contains(out, "no such container") && !strings.Contains(out, "not running") {
			n.c.t.Fatalf("podman kill %s: %v: %s", n.containerName(), err, out)
		}
	}
}

// freeze and thaw stop and continue the whole process (agent and its
// embedded etcd): a hung VM, not a dead one.
func (n *node) freeze() { n.Freeze() }
func (n *node) thaw()   { n.Thaw() }

// wipe deletes the node's data dir: a lost disk.
func (n *node) wipe() { n.Wipe() }

// report is the node's published state (the zero report when unreadable).
func (n *node) report() report.NodeReport { return n.Report() }

// current is the report of the running process (not a stale file left by
// a killed one).
func (n *node) current() (report.NodeReport, bool) { return n.Current() }

// describe is the node's state for a failure message.
func (n *node) describe() string { return n.Describe() }

// waitReady waits for READY=1 on the node's notify socket.
func (n *node) waitReady(timeout time.Duration) {
	n.c.t.Helper()
	if _, err := n.WaitReady(timeout); err != nil {
		n.c.t.Fatal(err)
	}
}

// form writes configs for nodes 1..count, starts them together and waits
// until every one is ready.
func (c *cluster) form(count int) []*node {
	c.t.Helper()
	nodes := make([]*node, count+1) // 1-based
	var all []testcluster.Node
	for i := 1; i <= count; i++ {
		nodes[i] = c.node(i)
		nodes[i].start()
		all = append(all, nodes[i])
	}
	testcluster.WaitReady(c.t, readyTimeout, all...)
	return nodes
}

// status runs `etcd-agent status` on node i as its operator does: the
// exit code, the JSON view and the table.
func (c *cluster) status(i int) (code int, view status.View, table string) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[i]
	c.mu.Unlock()
	run := func(args ...string) (int, []byte) {
		cmd := exec.Command(c.bin, append([]string{"status", "--config", n.configPath}, args...)...)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			c.t.Fatalf("run status on node %d: %v", i, err)
		}
		return cmd.ProcessState.ExitCode(), out
	}
	code, out := run("-o", "json")
	if err := json.Unmarshal(out, &view); err != nil {
		c.t.Fatalf("status -o json on node %d (exit %d): %v\n%s", i, code, err, out)
	}
	_, tab := run()
	return code, view, string(tab)
}

// ---- podman ----

// podman runs the podman CLI against the cluster's socket.
func (c *cluster) podman(args ...string) (string, error) {
	out, err := exec.Command("podman", append([]string{"--url", c.podmanSocket}, args...)...).CombinedOutput()
	return string(out), err
}

// usePodman runs etcd in containers on the rootful test socket, and removes
// the containers when the test ends.
func (c *cluster) usePodman() {
	c.t.Helper()
	if !c.e.UsePodman() {
		c.t.Skip(testcluster.PodmanHint)
	}
	if _, err := exec.LookPath("podman"); err != nil {
		c.t.Skip("the podman CLI is not installed (needed to kill containers in a power cut)")
	}
	c.podmanSocket = c.e.PodmanSocket
	c.t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, n := range c.nodes {
			n.kill()
			if out, err := c.podman("rm", "-f", "-t", "0", n.containerName()); err != nil && !strings.Contains(out, "no such container") {
				c.t.Logf("remove container %s: %v: %s", n.containerName(), err, out)
			}
		}
	})
}

// ---- the cluster as a client sees it ----

// client is a TLS client of the given nodes' client URLs.
func (c *cluster) client(idx ...int) *clientv3.Client {
	c.t.Helper()
	return c.e.Client(c.testPKI, c.endpoints(idx...)...)
}

func (c *cluster) endpoints(idx ...int) []string { return c.e.Endpoints(idx...) }

// member is one entry of the member list.
type member = testcluster.Member

// waitMembers waits until the member list is exactly the nodes idx, all
// voters, and each of them answers a status request as a voter; it returns
// the members.
func (c *cluster) waitMembers(cli *clientv3.Client, timeout time.Duration, idx ...int) map[string]member {
	c.t.Helper()
	ms, err := c.e.WaitMembers(cli, timeout, idx...)
	if err != nil {
		c.t.Fatalf("%v\n%s", err, c.describe(idx...))
	}
	return ms
}

// describe is the state of the started nodes among idx, for a failure
// message.
func (c *cluster) describe(idx ...int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var states []string
	for _, i := range idx {
		if n := c.nodes[i]; n != nil && n.proc != nil {
			states = append(states, n.describe())
		}
	}
	return strings.Join(states, "\n")
}

// proof is how every scenario ends: the expected voters, every acknowledged
// write read back, the history linearizable, HashKV equal on all members.
func (c *cluster) proof(w *lintest.Writer, cli *clientv3.Client, idx ...int) map[string]member {
	c.t.Helper()
	return c.e.Proof(w, cli, joinTimeout, func() string { return c.describe(idx...) }, idx...)
}

// put writes key=value through cli, retrying (bounded) until acknowledged.
func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, key, value)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: %v", key, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// getValue reads key linearizably within timeout; found=false for no key.
func getValue(cli *clientv3.Client, key string, timeout time.Duration) (value string, found bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return "", false, err
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}
