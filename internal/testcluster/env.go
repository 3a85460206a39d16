// Package testcluster runs multi-node etcd-agent scenarios on one machine,
// the same way whether the agents run inside the test's process (Agent,
// for agent/'s scenarios) or as `etcd-agent run` processes (ProcNode, for
// test/fault): both are a Node.
//
// An Env is one scenario's world: its own loopback /24 (internal/testnet),
// a CA, a certificate for the test itself, a discovery service, node configs
// built from the config types (config.WriteFile, read back by config.Load
// as a node reads it), TLS clients, and the membership checks and writer
// proof every scenario ends with. Helpers that belong to one scenario stay
// with its test.
//
// Node i lives at IP(i) and its files under NodeDir(i); IP(0) is the
// test's own address (discovery service, the test's client certificate).
// Every node uses etcd's fixed ports (2379, 2380) on its own address, which
// is why each Env needs a block nobody else uses.
package testcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// EtcdVersion is the etcd version node configs default their image to, as
// the binaries under test are built with (Makefile's ETCD_VERSION).
const EtcdVersion = "v3.7.3"

// Env is one scenario's world. Set the exported fields before the first
// NodeConfig; they apply to every node config written after.
type Env struct {
	T   testing.TB
	Dir string
	// Net is the scenario's own loopback block.
	Net testnet.Block
	// LogDir keeps every node's and process's log: Dir/logs, or
	// $ETCD_AGENT_TEST_LOGDIR/<name>/<test> to keep them after the test.
	LogDir string

	CACert, CAKey string
	// TestPKI holds the server and client certificates of IP(0): the
	// discovery service serves with them, the test's clients use them.
	TestPKI string

	// Name is the nodes' cluster.name.
	Name string
	// Grace is the nodes' cluster.deadMemberGrace: short (3s by default), so
	// tests need not wait long to replace a dead member.
	Grace time.Duration
	// Discovery is the nodes' cluster.discovery.
	Discovery config.Discovery
	// Snapshots leaves the nodes' scheduled snapshots on (their default).
	// Off otherwise: a snapshot and a verifying etcd per cluster load
	// every other test.
	Snapshots bool
	// PodmanSocket, when set, runs the nodes' etcd in containers through
	// this socket, named ContainerPrefix + the node's IP with dashes.
	PodmanSocket    string
	ContainerPrefix string

	mu   sync.Mutex
	logs map[string][]string // name -> its log files, oldest first
}

// New takes a loopback block and creates the CA and the test's
// certificate. name is the nodes' cluster.name and names the directory of
// kept logs.
func New(t testing.TB, name string) *Env {
	t.Helper()
	e := &Env{T: t, Dir: t.TempDir(), Net: testnet.Take(t), Name: name, Grace: 3 * time.Second,
		ContainerPrefix: "etcd-agent-" + name + "-", logs: map[string][]string{}}
	e.LogDir = filepath.Join(e.Dir, "logs")
	if d := os.Getenv("ETCD_AGENT_TEST_LOGDIR"); d != "" {
		e.LogDir = filepath.Join(d, name, strings.ReplaceAll(t.Name(), "/", "_"))
	}
	if err := os.MkdirAll(e.LogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.CACert, e.CAKey, err = pki.InitCA(filepath.Join(e.Dir, "ca"), pki.CAOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.TestPKI = e.IssueCerts("test-pki", e.Addr(0))
	return e
}

// IssueCerts issues a node's certificates for ip from the env's CA into
// Dir/name and returns that directory.
func (e *Env) IssueCerts(name string, ip netip.Addr) string {
	e.T.Helper()
	ca, err := pki.LoadCA(e.CACert, e.CAKey, time.Now())
	if err != nil {
		e.T.Fatal(err)
	}
	dir := filepath.Join(e.Dir, name)
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: dir, NodeIP: ip, Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
		e.T.Fatal(err)
	}
	return dir
}

// UsePodman runs the nodes' etcd in containers on the rootful test socket
// (.ci/podman-setup.sh); false when ETCD_AGENT_TEST_PODMAN_SOCKET is unset,
// for the caller to fail or skip as its tests do.
func (e *Env) UsePodman() bool {
	e.PodmanSocket = os.Getenv("ETCD_AGENT_TEST_PODMAN_SOCKET")
	return e.PodmanSocket != ""
}

// PodmanHint is what to do when UsePodman is false.
const PodmanHint = "ETCD_AGENT_TEST_PODMAN_SOCKET is not set: run .ci/podman-setup.sh as root and export what it prints"

// Addr is node i's address (host 10+i of the block); 0 is the test's own.
func (e *Env) Addr(i int) netip.Addr { return e.Net.Addr(10 + i) }

// IP is Addr as a string.
func (e *Env) IP(i int) string { return e.Addr(i).String() }

// MemberName is node i's etcd member name, as the agent derives it from
// its IP.
func (e *Env) MemberName(i int) string { return "etcd-" + strings.ReplaceAll(e.IP(i), ".", "-") }

// ClientURL and PeerURL are node i's etcd URLs (the default ports).
func (e *Env) ClientURL(i int) string {
	return fmt.Sprintf("https://%s:%d", e.IP(i), config.DefaultClientPort)
}

func (e *Env) PeerURL(i int) string {
	return fmt.Sprintf("https://%s:%d", e.IP(i), config.DefaultPeerPort)
}

// Endpoints are the client URLs of nodes idx.
func (e *Env) Endpoints(idx ...int) []string {
	var eps []string
	for _, i := range idx {
		eps = append(eps, e.ClientURL(i))
	}
	return eps
}

// ContainerName is node i's etcd container on Podman.
func (e *Env) ContainerName(i int) string {
	return e.ContainerPrefix + strings.ReplaceAll(e.IP(i), ".", "-")
}

// NodeDir holds node i's config, data, certificates and status file.
func (e *Env) NodeDir(i int) string { return filepath.Join(e.Dir, fmt.Sprintf("node%d", i)) }

// StaticDiscovery lists nodes idx as the founders.
func (e *Env) StaticDiscovery(idx ...int) config.Discovery {
	var list []string
	for _, i := range idx {
		list = append(list, e.MemberName(i)+"="+e.PeerURL(i))
	}
	return config.Discovery{Static: strings.Join(list, ",")}
}

// V3Discovery is the discovery block for a token on a v3 discovery
// service.
func V3Discovery(url, token string) config.Discovery {
	return config.Discovery{Endpoints: []string{url}, Token: token}
}

// FleetLockPort is where each node serves FleetLock, on its own IP(i).
const FleetLockPort = 2384

// NodeConfig is node i's config as the scenarios run it, before defaults:
// static identity at IP(i); data, certificates and status file under
// NodeDir(i); the env's CA, discovery and grace; etcd embedded or on
// Podman; a 200ms supervision loop; snapshots off unless Snapshots.
func (e *Env) NodeConfig(i, size int) *config.Config {
	dir := e.NodeDir(i)
	cfg := &config.Config{
		Cluster: config.Cluster{Name: e.Name, Size: size, DeadMemberGrace: config.Duration(e.Grace), Discovery: e.Discovery},
		Node:    config.Node{Identity: "static", IP: e.IP(i), DataDir: filepath.Join(dir, "data")},
		PKI:     config.PKI{CACert: e.CACert, CAKey: e.CAKey, Dir: filepath.Join(dir, "pki")},
		Etcd:    config.Etcd{Runtime: "embedded"},
		Agent:   config.Agent{StatusFile: filepath.Join(dir, "status.json"), HealthInterval: config.Duration(200 * time.Millisecond)},
		Backup:  config.Backup{Disabled: !e.Snapshots},
		// Each node's own loopback address: the nodes share this machine.
		FleetLock: config.FleetLock{Address: net.JoinHostPort(e.IP(i), strconv.Itoa(FleetLockPort))},
	}
	if e.PodmanSocket != "" {
		cfg.Etcd.Runtime = "podman"
		cfg.Podman = config.Podman{Socket: e.PodmanSocket, ContainerName: e.ContainerName(i), StopTimeout: config.Duration(10 * time.Second)}
	}
	return cfg
}

// WriteConfig writes cfg as node i's config.yaml and loads it back through
// config.Load, as `etcd-agent run --config` does; it returns the file's
// path and the loaded config.
func (e *Env) WriteConfig(i int, cfg *config.Config) (string, *config.Config) {
	e.T.Helper()
	if err := os.MkdirAll(e.NodeDir(i), 0o700); err != nil {
		e.T.Fatal(err)
	}
	path := filepath.Join(e.NodeDir(i), "config.yaml")
	if err := config.WriteFile(path, fmt.Sprintf("Node %d of %s (internal/testcluster).", i, e.T.Name()), cfg); err != nil {
		e.T.Fatal(err)
	}
	loaded, _, err := config.Load(config.Source{Path: path, DefaultImageTag: EtcdVersion})
	if err != nil {
		e.T.Fatalf("node %d config: %v", i, err)
	}
	return path, loaded
}

// Client is a TLS client of endpoints with the client certificate in
// certDir (the env's TestPKI, or a node's pki dir). It is closed when the
// test ends, if not before.
func (e *Env) Client(certDir string, endpoints ...string) *clientv3.Client {
	e.T.Helper()
	tlsCfg, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		e.T.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { cli.Close() })
	return cli
}

// CreateLog creates LogDir/name-N.log, N counting up from 1, never over
// the log of an earlier run kept in ETCD_AGENT_TEST_LOGDIR.
func (e *Env) CreateLog(name string) *os.File {
	e.T.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for n := len(e.logs[name]) + 1; ; n++ {
		path := filepath.Join(e.LogDir, fmt.Sprintf("%s-%d.log", name, n))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			e.T.Fatal(err)
		}
		e.logs[name] = append(e.logs[name], path)
		return f
	}
}

// Logs is everything the logs CreateLog made for name hold so far, oldest
// first.
func (e *Env) Logs(name string) string {
	e.mu.Lock()
	paths := slices.Clone(e.logs[name])
	e.mu.Unlock()
	var b strings.Builder
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			b.Write(data)
		}
	}
	return b.String()
}
