// Package fault_test runs fault scenarios against real etcd-agent processes:
// every node is `etcd-agent run --config node.yaml` (bin/etcd-agent, built by
// `make build`), discovery is `etcd-agent discovery serve`, and the test
// kills, freezes, restarts and wipes nodes the way a machine or an operator
// would. Every scenario keeps a writer running throughout and ends with the
// same proof: every acknowledged write read back, the history linearizable,
// HashKV equal on all members, and the expected voters.
package fault_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/pki"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

const (
	// readyTimeout bounds a founding node's start (discovery, certs, etcd).
	readyTimeout = 90 * time.Second
	// joinTimeout bounds a join: grace period, learner catch-up, promotion.
	joinTimeout = 3 * time.Minute
	// exitConfig is the exit code of a node that must not be restarted
	// (config error, or it left the cluster).
	exitConfig = 78
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

// cluster is one scenario's world: a CA, a discovery source, nodes on
// 127.0.1.(ipBase+i) (i >= 1; ipBase+0 is the discovery service and the
// tester's client certificate).
type cluster struct {
	t      *testing.T
	bin    string
	dir    string
	logDir string
	// net is the /24 of the scenario's addresses; ipBase its first host.
	net    string
	ipBase int
	caCert string
	caKey  string
	// testPKI holds server certs for the discovery service and the client
	// certificate the test itself uses.
	testPKI string
	// grace is the nodes' cluster.deadMemberGrace.
	grace time.Duration
	// size is the nodes' cluster.size.
	size int
	// discoveryYAML is the cluster.discovery block, indented 4 spaces.
	discoveryYAML string
	discURL       string
	token         string
	// podmanSocket, when set, makes nodes run etcd in containers.
	podmanSocket string
	// extraYAML is appended to every node's config (top-level sections);
	// env to every node's environment.
	extraYAML string
	env       []string
	// containerPrefix names the nodes' containers; "": etcd-agent-fault-.
	containerPrefix string

	mu    sync.Mutex
	seq   map[string]int
	nodes map[int]*node
}

func newCluster(t *testing.T, ipBase int) *cluster {
	t.Helper()
	return newClusterIn(t, loopbackNet, ipBase)
}

// newClusterIn is newCluster in another /24 (net is "127.0.9").
func newClusterIn(t *testing.T, net string, ipBase int) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("fault scenario with real processes")
	}
	c := &cluster{t: t, bin: agentBinary(t), dir: t.TempDir(), net: net, ipBase: ipBase, grace: 3 * time.Second,
		seq: map[string]int{}, nodes: map[int]*node{}}
	c.logDir = filepath.Join(c.dir, "logs")
	if d := os.Getenv("ETCD_AGENT_TEST_LOGDIR"); d != "" {
		c.logDir = filepath.Join(d, "fault", strings.ReplaceAll(t.Name(), "/", "_"))
	}
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.caCert, c.caKey, err = pki.InitCA(filepath.Join(c.dir, "ca"), pki.CAOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	c.testPKI = filepath.Join(c.dir, "test-pki")
	ca, err := pki.LoadCA(c.caCert, c.caKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: c.testPKI, NodeIP: netip.MustParseAddr(c.ip(0)),
		Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	t.Logf("logs in %s", c.logDir)
	return c
}

// loopbackNet is the /24 the scenarios' nodes live in: 127.0.1.x, because
// the agent package's multi-node tests use 127.0.0.100-259 and run in
// parallel with this package under `go test ./...`. Each scenario takes
// its own sub-block 100-149 of it (ipBase).
const loopbackNet = "127.0.1"

func (c *cluster) ip(i int) string   { return fmt.Sprintf("%s.%d", c.net, c.ipBase+i) }
func (c *cluster) name(i int) string { return "etcd-" + strings.ReplaceAll(c.ip(i), ".", "-") }
func (c *cluster) clientURL(i int) string {
	return fmt.Sprintf("https://%s:2379", c.ip(i))
}

// ---- processes ----

// proc is one process the test started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set when done is closed
}

// spawn starts bin with args, stdout and stderr to a fresh log file (and
// to lines, when not nil). The process is killed when the test ends.
func (c *cluster) spawn(name string, env []string, lines func(string), args ...string) *proc {
	c.t.Helper()
	// name-N.log, N counting up; never overwrite the log of an earlier
	// run kept in ETCD_AGENT_TEST_LOGDIR.
	var logPath string
	var logFile *os.File
	var err error
	c.mu.Lock()
	for {
		c.seq[name]++
		logPath = filepath.Join(c.logDir, fmt.Sprintf("%s-%d.log", name, c.seq[name]))
		if logFile, err = os.OpenFile(logPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	var pr, pw *os.File
	if lines != nil {
		if pr, pw, err = os.Pipe(); err != nil {
			c.t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = pw, pw
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	scanned := make(chan struct{})
	if lines == nil {
		close(scanned)
	} else {
		pw.Close() // the child holds its own copy
		go func() {
			defer close(scanned)
			defer pr.Close()
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				fmt.Fprintln(logFile, sc.Text())
				lines(sc.Text())
			}
			_, _ = io.Copy(logFile, pr) // a line too long to scan: keep draining
		}()
	}
	go func() {
		<-scanned // EOF: the child exited
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	c.t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL (a frozen process too) and waits for the exit.
func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal).
func (p *proc) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

// tail is the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- discovery ----

// useV3Discovery runs `etcd-agent discovery serve` on ip(0) and creates a
// token for size founders with `etcd-agent discovery new`.
func (c *cluster) useV3Discovery(size int) {
	c.t.Helper()
	c.size = size
	c.discURL = fmt.Sprintf("https://%s:2379", c.ip(0))
	c.spawn("discovery", nil, nil, "discovery", "serve", "--listen", c.discURL, "--listen-peer", fmt.Sprintf("https://%s:2380", c.ip(0)),
		"--data-dir", filepath.Join(c.dir, "discovery-data"), "--cert-dir", c.testPKI)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(c.bin, "discovery", "new", "--size", fmt.Sprint(size), "--endpoints", c.discURL, "--cert-dir", c.testPKI).Output()
		if err == nil {
			c.token = strings.TrimSpace(string(out))
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("discovery new: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.discoveryYAML = fmt.Sprintf("    endpoints: [%s]\n    token: %s\n", c.discURL, c.token)
}

// useStaticDiscovery lists nodes 1..size as the founders.
func (c *cluster) useStaticDiscovery(size int) {
	c.size = size
	var list []string
	for i := 1; i <= size; i++ {
		list = append(list, fmt.Sprintf("%s=https://%s:2380", c.name(i), c.ip(i)))
	}
	c.discoveryYAML = fmt.Sprintf("    static: %s\n", strings.Join(list, ","))
}

// ---- nodes ----

// node is one agent under test, across its restarts.
type node struct {
	c          *cluster
	i          int
	dir        string
	configPath string
	dataDir    string
	statusFile string
	proc       *proc
	notify     *notifytest.Listener
	// bootstrapSeen: a bootstrap decision was already reported.
	bootstrapSeen bool
}

// node writes node i's config.yaml (as `etcd-agent local up` does) for the
// cluster's discovery source, size and grace.
func (c *cluster) node(i int) *node {
	c.t.Helper()
	dir := filepath.Join(c.dir, fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	n := &node{c: c, i: i, dir: dir, configPath: filepath.Join(dir, "config.yaml"),
		dataDir: filepath.Join(dir, "data"), statusFile: filepath.Join(dir, "status.json")}
	runtimeYAML := "etcd:\n  runtime: embedded\n"
	if c.podmanSocket != "" {
		runtimeYAML = fmt.Sprintf("etcd:\n  runtime: podman\npodman:\n  socket: %s\n  containerName: %s\n  stopTimeout: 10s\n",
			c.podmanSocket, n.containerName())
	}
	yaml := fmt.Sprintf(`cluster:
  name: fault
  size: %d
  deadMemberGrace: %s
  discovery:
%snode:
  identity: static
  ip: %s
  dataDir: %s
pki:
  caCert: %s
  caKey: %s
  dir: %s
%sagent:
  statusFile: %s
  healthInterval: 200ms
%s`, c.size, c.grace, c.discoveryYAML, c.ip(i), n.dataDir, c.caCert, c.caKey, filepath.Join(dir, "pki"), runtimeYAML, n.statusFile, c.extraYAML)
	if err := os.WriteFile(n.configPath, []byte(yaml), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return n
}

func (n *node) containerName() string {
	prefix := n.c.containerPrefix
	if prefix == "" {
		prefix = "etcd-agent-fault-"
	}
	return prefix + strings.ReplaceAll(n.c.ip(n.i), ".", "-")
}

// start runs `etcd-agent run --config` with a fresh sd_notify socket.
func (n *node) start() {
	n.c.t.Helper()
	if n.proc != nil && n.proc.running() {
		n.c.t.Fatalf("node %d is already running", n.i)
	}
	n.notify = notifytest.New(n.c.t)
	n.proc = n.c.spawn(fmt.Sprintf("node%d", n.i), append([]string{"NOTIFY_SOCKET=" + n.notify.Path()}, n.c.env...), nil, "run", "--config", n.configPath)
}

// kill is SIGKILL to the agent (embedded etcd dies with it; a container
// does not: see powerCut).
func (n *node) kill() {
	if n.proc != nil {
		n.proc.kill()
	}
}

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
func (n *node) freeze() {
	if err := n.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		n.c.t.Fatal(err)
	}
}

func (n *node) thaw() {
	if err := n.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		n.c.t.Fatal(err)
	}
}

// wipe deletes the node's data dir: a lost disk.
func (n *node) wipe() {
	if err := os.RemoveAll(n.dataDir); err != nil {
		n.c.t.Fatal(err)
	}
}

// report is the node's published state (the zero report when unreadable).
func (n *node) report() report.NodeReport {
	r, _ := report.Read(n.statusFile)
	return r
}

// current is the report of the running process (not a stale file left by
// a killed one).
func (n *node) current() (report.NodeReport, bool) {
	r := n.report()
	return r, n.proc != nil && r.PID == n.proc.cmd.Process.Pid
}

// describe is the node's state for a failure message.
func (n *node) describe() string {
	r, cur := n.current()
	state := "running"
	if n.proc == nil {
		state = "never started"
	} else if !n.proc.running() {
		state = fmt.Sprintf("exited (%v)", n.proc.err)
	}
	if !cur {
		return fmt.Sprintf("node %d: process %s, no status file from it yet; log tail:\n%s", n.i, state, n.proc.tail(8))
	}
	return fmt.Sprintf("node %d: process %s, phase %s, message %q, last error %q, decisions %s; log tail:\n%s",
		n.i, state, r.Phase, r.Message, r.LastError, decisions(r), n.proc.tail(8))
}

func decisions(r report.NodeReport) string {
	var out []string
	for _, d := range r.Decisions {
		out = append(out, string(d.Action)+": "+d.Reason)
	}
	return fmt.Sprintf("%q", out)
}

// waitReady waits for READY=1 on the node's notify socket.
func (n *node) waitReady(timeout time.Duration) {
	n.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	exited := make(chan struct{})
	go func() {
		select {
		case <-n.proc.done:
			// A dead agent never becomes ready: stop waiting at once.
			time.Sleep(500 * time.Millisecond)
			cancel()
		case <-ctx.Done():
		}
		close(exited)
	}()
	_, err := n.notify.UntilReady(ctx)
	cancel()
	<-exited
	if err != nil {
		n.c.t.Fatalf("node %d not ready after %s: %v\n%s", n.i, timeout, err, n.describe())
	}
}

// form writes configs for nodes 1..count, starts them together and waits
// until every one is ready.
func (c *cluster) form(count int) []*node {
	c.t.Helper()
	nodes := make([]*node, count+1) // 1-based
	for i := 1; i <= count; i++ {
		nodes[i] = c.node(i)
		nodes[i].start()
	}
	for i := 1; i <= count; i++ {
		nodes[i].waitReady(readyTimeout)
	}
	return nodes
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
	sock := os.Getenv("ETCD_AGENT_TEST_PODMAN_SOCKET")
	if sock == "" {
		c.t.Skip("ETCD_AGENT_TEST_PODMAN_SOCKET is not set: run .ci/podman-setup.sh as root and export what it prints")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		c.t.Skip("the podman CLI is not installed (needed to kill containers in a power cut)")
	}
	c.podmanSocket = sock
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
	tlsCfg, err := pki.ClientTLS(c.testPKI, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		c.t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(idx...), TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *cluster) endpoints(idx ...int) []string {
	var eps []string
	for _, i := range idx {
		eps = append(eps, c.clientURL(i))
	}
	return eps
}

// member is one entry of the member list.
type member struct {
	ID      uint64
	Learner bool
}

func memberList(ctx context.Context, cli *clientv3.Client) (map[string]member, error) {
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]member{}
	for _, m := range resp.Members {
		name := m.Name
		if name == "" { // added, not started yet
			name = fmt.Sprintf("(unstarted %x %v)", m.ID, m.PeerURLs)
		}
		out[name] = member{ID: m.ID, Learner: m.IsLearner}
	}
	return out, nil
}

// waitMembers waits until the member list is exactly the nodes idx, all
// voters, and each of them answers a status request as a voter; it returns
// the members.
func (c *cluster) waitMembers(cli *clientv3.Client, timeout time.Duration, idx ...int) map[string]member {
	c.t.Helper()
	var want []string
	for _, i := range idx {
		want = append(want, c.name(i))
	}
	slices.Sort(want)
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ms, problem := c.checkMembers(cli, want, idx)
		if problem == "" {
			return ms
		}
		last = problem
		if time.Now().After(deadline) {
			var states []string
			for _, i := range idx {
				if n := c.nodes[i]; n != nil && n.proc != nil {
					states = append(states, n.describe())
				}
			}
			c.t.Fatalf("members not %v after %s: %s\n%s", want, timeout, last, strings.Join(states, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *cluster) checkMembers(cli *clientv3.Client, want []string, idx []int) (map[string]member, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := memberList(ctx, cli)
	if err != nil {
		return nil, "member list: " + err.Error()
	}
	var got []string
	for name, m := range ms {
		got = append(got, name)
		if m.Learner {
			return nil, fmt.Sprintf("member %s is a learner", name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return nil, fmt.Sprintf("members are %v", got)
	}
	for _, i := range idx {
		st, err := cli.Status(ctx, c.clientURL(i))
		if err != nil {
			return nil, fmt.Sprintf("status of %s: %v", c.name(i), err)
		}
		if st.IsLearner || st.Leader == 0 {
			return nil, fmt.Sprintf("%s: learner %v, leader %x", c.name(i), st.IsLearner, st.Leader)
		}
	}
	return ms, ""
}

// proof is how every scenario ends: the expected voters, every acknowledged
// write read back, the history linearizable, HashKV equal on all members.
func (c *cluster) proof(w *lintest.Writer, cli *clientv3.Client, idx ...int) map[string]member {
	c.t.Helper()
	cli.SetEndpoints(c.endpoints(idx...)...)
	ms := c.waitMembers(cli, joinTimeout, idx...)
	w.Verify(c.t, cli)
	lintest.HashKVEqual(c.t, cli, c.endpoints(idx...))
	c.waitMembers(cli, 10*time.Second, idx...)
	return ms
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
