//go:build nodetest

package node_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/pki"
)

// Names and addresses: everything this test creates carries "node-test", on
// its own Podman network.
const (
	network     = "etcd-agent-node-test"
	subnet      = "10.89.77.0/24"
	discoveryIP = "10.89.77.2"
	imageRepo   = "localhost/etcd-agent-node-test"
	namePrefix  = "etcd-agent-node-test-"
	etcdImage   = "gcr.io/etcd-development/etcd:v3.7.3"
	// agentURL is the spec's agent.url; node-ignite serves it from the
	// binary under test and still checks the rendered sha512.
	agentURL = "https://downloads.example.invalid/etcd-agent"
	// nodeUser is the spec's default user: it runs the agent and rootless
	// Podman, and is the operator's SSH login.
	nodeUser = "etcd-user"
	unit     = "etcd-agent.service"
)

// packages make the node image: systemd as init, logind for linger, the user
// bus for `systemctl --user`, rootless Podman with runc.
var packages = []string{
	"systemd", "systemd-sysv", "dbus", "dbus-user-session", "libpam-systemd",
	"podman", "runc", "uidmap", "fuse-overlayfs", "slirp4netns", "iproute2", "procps",
}

// harness is the shared world: image, network, CA, discovery service and the
// rendered Ignition.
type harness struct {
	t       *testing.T
	root    string // module root
	dir     string // this run's files
	image   string
	token   string
	ignPath string
	nodes   []*node
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("node tests need root (rootful Podman, privileged systemd containers)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, root: root, dir: t.TempDir()}
	for _, bin := range []string{"bin/etcd-agent", "bin/ec2-metadata-mock"} {
		if _, err := os.Stat(filepath.Join(root, bin)); err != nil {
			t.Fatalf("%s missing (%v): run `make build tools`", bin, err)
		}
	}
	h.cleanupStale()
	t.Cleanup(h.cleanup)
	h.image = h.ensureImage()
	h.podman("network", "create", "--subnet", subnet, network)
	h.buildHelpers()
	h.saveEtcdImage()
	h.startDiscovery()
	h.render()
	return h
}

// podman runs the host's (rootful) podman and fails the test on error.
func (h *harness) podman(args ...string) string {
	h.t.Helper()
	out, err := podmanCmd(args...)
	if err != nil {
		h.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func podmanCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "podman", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// cleanupStale removes what an interrupted earlier run left behind.
func (h *harness) cleanupStale() {
	out, _ := podmanCmd("ps", "-a", "--filter", "name="+namePrefix, "--format", "{{.Names}}")
	for _, name := range strings.Fields(out) {
		if strings.HasPrefix(name, namePrefix) {
			_, _ = podmanCmd("rm", "-f", "-t", "0", name)
		}
	}
	_, _ = podmanCmd("network", "rm", "-f", network)
}

func (h *harness) cleanup() {
	if h.t.Failed() {
		for _, n := range h.nodes {
			out, _ := podmanCmd("exec", n.name, "journalctl", "--no-pager", "-n", "80", "-u", unit, "-u", "user@1000.service")
			h.t.Logf("%s journal (last 80 lines):\n%s", n.name, out)
		}
	}
	if os.Getenv("ETCD_AGENT_TEST_KEEP") != "" {
		h.t.Logf("ETCD_AGENT_TEST_KEEP set: leaving containers %s* and network %s", namePrefix, network)
		return
	}
	h.cleanupStale()
}

// ensureImage builds the node image unless this exact one exists: Debian
// bookworm (minbase) with packages, plus testdata/rootfs, imported into
// Podman. The tag hashes everything that goes into it.
func (h *harness) ensureImage() string {
	h.t.Helper()
	sum := sha256.New()
	fmt.Fprintln(sum, strings.Join(packages, ","))
	rootfs, _ := filepath.Abs("testdata/rootfs")
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintln(sum, strings.TrimPrefix(p, rootfs))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			fmt.Fprintln(sum, target)
			return err
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			sum.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("hash testdata/rootfs: %v", err)
	}
	image := imageRepo + ":" + hex.EncodeToString(sum.Sum(nil))[:12]
	if _, err := podmanCmd("image", "exists", image); err == nil {
		h.t.Logf("node image %s exists", image)
		return image
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		h.t.Fatalf("mmdebstrap not found: apt-get install mmdebstrap (it builds the node image)")
	}
	tar := filepath.Join(h.dir, "node.tar")
	start := time.Now()
	cmd := exec.Command("mmdebstrap", "--variant=minbase", "--include="+strings.Join(packages, ","),
		"--customize-hook=copy-in "+filepath.Join(rootfs, "etc")+" /", "bookworm", tar)
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	h.podman("import", "--change", `CMD ["/sbin/init"]`, tar, image)
	_ = os.Remove(tar)
	h.t.Logf("built node image %s in %s", image, time.Since(start).Round(time.Second))
	return image
}

// buildHelpers builds the node's helpers: node-ignite, its Ignition
// stand-in, and node-fleetlock, its Zincati stand-in.
func (h *harness) buildHelpers() {
	h.t.Helper()
	for _, name := range []string{"node-ignite", "node-fleetlock"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(h.dir, name), "./test/node/cmd/"+name)
		cmd.Dir = h.root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			h.t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
}

// saveEtcdImage exports the etcd image each node loads for its user.
func (h *harness) saveEtcdImage() {
	h.t.Helper()
	h.podman("save", "--quiet", "-o", filepath.Join(h.dir, "etcd.tar"), etcdImage)
}

// startDiscovery runs `etcd-agent discovery serve` (TLS, client-cert auth)
// on the node network and creates a token for three founders.
func (h *harness) startDiscovery() {
	h.t.Helper()
	caDir := filepath.Join(h.dir, "ca")
	if _, _, err := pki.InitCA(caDir, pki.CAOptions{CommonName: "etcd-agent node-test CA"}, time.Now()); err != nil {
		h.t.Fatal(err)
	}
	discCerts := filepath.Join(h.dir, "discovery-certs")
	h.issue(discCerts, discoveryIP)
	h.podman("run", "-d", "--name", namePrefix+"discovery", "--network", network, "--ip", discoveryIP,
		"-v", filepath.Join(h.root, "bin/etcd-agent")+":/usr/local/bin/etcd-agent:ro",
		"-v", discCerts+":/certs:ro", h.image,
		"/usr/local/bin/etcd-agent", "discovery", "serve", "--listen", "https://"+discoveryIP+":2379",
		"--data-dir", "/var/lib/discovery", "--cert-dir", "/certs")
	var token string
	waitFor(h.t, 2*time.Minute, "a discovery token", func() (bool, string) {
		out, err := podmanCmd("exec", namePrefix+"discovery", "etcd-agent", "discovery", "new", "--size", "3",
			"--endpoints", "https://"+discoveryIP+":2379", "--cert-dir", "/certs")
		token = out
		return err == nil && len(out) >= 16 && !strings.ContainsAny(out, " \n"), out
	})
	h.token = token
}

// issue writes node certificates for ip (server, peer, client, operator)
// from the test CA into dir.
func (h *harness) issue(dir, ip string) {
	h.t.Helper()
	caDir := filepath.Join(h.dir, "ca")
	ca, err := pki.LoadCA(filepath.Join(caDir, pki.CACertFile), filepath.Join(caDir, pki.CAKeyFile), time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: dir, NodeIP: netip.MustParseAddr(ip),
		Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
		h.t.Fatal(err)
	}
}

// render writes the cluster spec and runs `etcd-agent butane` on it, as an
// operator would; the nodes get its user-data.ign, the document EC2 would
// hand them.
func (h *harness) render() {
	h.t.Helper()
	bin, err := os.ReadFile(filepath.Join(h.root, "bin/etcd-agent"))
	if err != nil {
		h.t.Fatal(err)
	}
	sum := sha512.Sum512(bin)
	spec := fmt.Sprintf(`cluster:
  name: node-test
  size: 3
discovery:
  endpoints: [https://%s:2379]
  token: %s
agent:
  url: %s
  sha512: %s
ca:
  cert: ca/ca.crt
  key: ca/ca.key
  allowKeyInUserData: true
ssh:
  authorizedKeys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINzb4yXjCKywK1JnbaCcAHt+PIaG54MQfznyTfrBEpQe node-test
`, discoveryIP, h.token, agentURL, hex.EncodeToString(sum[:]))
	specPath := filepath.Join(h.dir, "cluster.yaml")
	if err := os.WriteFile(specPath, []byte(spec), 0o600); err != nil {
		h.t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(h.root, "bin/etcd-agent"), "butane", "--spec", specPath, "--out", filepath.Join(h.dir, "butane")).CombinedOutput()
	if err != nil {
		h.t.Fatalf("etcd-agent butane: %v\n%s", err, out)
	}
	h.ignPath = filepath.Join(h.dir, "butane", "user-data.ign")
}

// node is one booted node container.
type node struct {
	h    *harness
	i    int
	name string
	ip   string
	dir  string
}

// bootOptions vary a node's boot.
type bootOptions struct {
	// podmanSocketOutage stops the agent user's podman.socket before the
	// agent starts and starts it again 30 s later.
	podmanSocketOutage bool
}

// boot starts node i (10.89.77.1i): node-ignite applies the rendered
// Ignition, loads the etcd image for the user and execs systemd.
func (h *harness) boot(i int, o bootOptions) *node {
	h.t.Helper()
	n := &node{h: h, i: i, name: fmt.Sprintf("%s%d", namePrefix, i), ip: fmt.Sprintf("10.89.77.1%d", i), dir: filepath.Join(h.dir, fmt.Sprintf("node%d", i))}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	link := func(src, name string) {
		dst := filepath.Join(n.dir, name)
		if err := os.Link(src, dst); err == nil {
			return
		}
		data, err := os.ReadFile(src) // another file system: copy
		if err == nil {
			err = os.WriteFile(dst, data, 0o755)
		}
		if err != nil {
			h.t.Fatal(err)
		}
	}
	link(filepath.Join(h.root, "bin/etcd-agent"), "etcd-agent")
	link(filepath.Join(h.root, "bin/ec2-metadata-mock"), "ec2-metadata-mock")
	link(filepath.Join(h.dir, "node-ignite"), "node-ignite")
	link(filepath.Join(h.dir, "node-fleetlock"), "node-fleetlock")
	link(filepath.Join(h.dir, "etcd.tar"), "etcd.tar")
	link(h.ignPath, "user-data.ign")
	n.writeIMDS()
	args := []string{"run", "-d", "--name", n.name, "--hostname", "ip-" + strings.ReplaceAll(n.ip, ".", "-"),
		"--systemd=always", "--privileged", "--network", network, "--ip", n.ip,
		"-v", n.dir + ":/opt/node:ro"}
	if o.podmanSocketOutage {
		// testdata/rootfs's node-test-podman-outage.service acts on it.
		if err := os.WriteFile(filepath.Join(n.dir, "podman-socket-outage"), nil, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	args = append(args, h.image, "/opt/node/node-ignite", "--config", "/opt/node/user-data.ign",
		"--source", agentURL+"=/opt/node/etcd-agent", "--preload-image", "/opt/node/etcd.tar", "--", "/sbin/init")
	if out, err := podmanCmd(args...); err != nil {
		// Seen under load: podman failed and left the name taken.
		h.t.Logf("podman run %s: %v: %s; retrying once", n.name, err, out)
		_, _ = podmanCmd("rm", "-f", "-t", "0", n.name)
		h.podman(args...)
	}
	h.nodes = append(h.nodes, n)
	return n
}

// writeIMDS is the simulator's config for this node: its own IP and
// instance identity (the document's privateIp must agree with local-ipv4).
func (n *node) writeIMDS() {
	id := fmt.Sprintf("i-0node0test0%d", n.i)
	host := "ip-" + strings.ReplaceAll(n.ip, ".", "-") + ".ec2.internal"
	pub := fmt.Sprintf("203.0.113.1%d", n.i)
	cfg := map[string]any{
		"metadata": map[string]any{"values": map[string]any{
			"local-ipv4": n.ip, "mac-local-ipv4s": n.ip, "public-ipv4": pub, "mac-public-ipv4s": pub,
			"instance-id": id, "placement-availability-zone": "us-east-1a", "placement-region": "us-east-1",
			"local-hostname": host, "hostname": host,
		}},
		"dynamic": map[string]any{"values": map[string]any{"instance-identity-document": map[string]any{
			"privateIp": n.ip, "instanceId": id, "availabilityZone": "us-east-1a", "region": "us-east-1",
		}}},
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		n.h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.dir, "imds.json"), data, 0o644); err != nil {
		n.h.t.Fatal(err)
	}
}

// exec runs a command in the node as root.
func (n *node) exec(args ...string) (string, error) {
	return podmanCmd(append([]string{"exec", n.name}, args...)...)
}

// asUser runs a command in the node as the operator user, in its home, with
// its runtime dir: what an SSH session would have.
func (n *node) asUser(args ...string) (string, error) {
	return podmanCmd(append([]string{"exec", "-u", nodeUser, "-w", "/home/" + nodeUser,
		"-e", "XDG_RUNTIME_DIR=/run/user/1000", n.name}, args...)...)
}

// show returns systemd properties of the agent unit.
func (n *node) show(props ...string) map[string]string {
	out, err := n.exec("systemctl", "show", unit, "-p", strings.Join(props, ","))
	m := map[string]string{}
	if err != nil {
		return m
	}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (n *node) nRestarts() int {
	v, _ := strconv.Atoi(n.show("NRestarts")["NRestarts"])
	return v
}

// journal is the agent unit's journal, systemd's lines included.
func (n *node) journal() string {
	out, _ := n.exec("journalctl", "--no-pager", "-o", "short-precise", "-u", unit)
	return out
}

// etcdContainer is the etcd container's ID and start time, from the user's
// Podman.
func (n *node) etcdContainer() (id, started string) {
	out, err := n.asUser("podman", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", "etcd")
	if err != nil {
		return "", ""
	}
	id, started, _ = strings.Cut(out, " ")
	return id, started
}

// waitFor polls cond until it holds or the deadline passes; the last detail
// goes into the failure.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var detail string
	for {
		var ok bool
		if ok, detail = cond(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", d, what, detail)
		}
		time.Sleep(time.Second)
	}
}

// client is an etcd client on every node, with a client certificate from
// the cluster CA.
func (h *harness) client() *clientv3.Client {
	h.t.Helper()
	dir := filepath.Join(h.dir, "host-certs")
	h.issue(dir, "10.89.77.1")
	tlsCfg, err := pki.ClientTLS(dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		h.t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: h.endpoints(), TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cli.Close() })
	return cli
}

func (h *harness) endpoints() []string {
	var eps []string
	for _, n := range h.nodes {
		eps = append(eps, "https://"+n.ip+":2379")
	}
	sort.Strings(eps)
	return eps
}

// excerpt is the lines of s containing any of subs, at most max of them.
func excerpt(s string, max int, subs ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(line, sub) {
				out = append(out, line)
				break
			}
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return strings.Join(out, "\n")
}
