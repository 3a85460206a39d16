// Package imdssim runs AWS's IMDS simulator (amazon-ec2-metadata-mock,
// built into bin/ by `make tools`) as a subprocess for tests: IMDSv2 only,
// on a loopback address, in one of its modes (all paths, or only the
// Auto Scaling lifecycle state, the spot interruption notice or the
// scheduled events). It runs as a process because the simulator keeps
// global state.
package imdssim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BinaryEnv overrides where the simulator binary is found.
const BinaryEnv = "ETCD_AGENT_TEST_IMDS_MOCK"

// Mode is the simulator's subcommand.
type Mode string

// Modes of the simulator.
const (
	// All serves every path: the lifecycle state Terminated, a spot
	// notice, a rebalance recommendation, a scheduled event.
	All Mode = ""
	// ASGLifecycle serves autoscaling/target-lifecycle-state only
	// (InService until TerminateAfter, then Terminated).
	ASGLifecycle Mode = "asglifecycle"
	// Spot serves spot/instance-action and the rebalance recommendation
	// (404 until NoticeAfter).
	Spot Mode = "spot"
	// Events serves events/maintenance/scheduled only.
	Events Mode = "events"
)

// Options are one simulator's settings.
type Options struct {
	Mode Mode
	// IP is the loopback address it listens on. Zero: 127.0.0.1.
	IP string
	// Port; zero: a free one.
	Port int
	// InstanceID overrides instance-id (and the identity document's).
	InstanceID string
	// PrivateIP overrides local-ipv4 (and the identity document's
	// privateIp, which the simulator would otherwise disagree with).
	PrivateIP string
	// NoticeAfter delays the spot notice (and the rebalance
	// recommendation), in whole seconds from the simulator's start.
	NoticeAfter time.Duration
	// TerminateAfter delays the lifecycle state Terminated.
	TerminateAfter time.Duration
	// RebalanceOnly (Spot mode): the rebalance recommendation at once and
	// the interruption notice not within a day, so an agent sees only the
	// recommendation.
	RebalanceOnly bool
}

// Sim is a running simulator.
type Sim struct {
	Endpoint string
	Port     int
	cmd      *exec.Cmd
	exited   chan error
	out      *syncBuffer
	once     sync.Once
}

// Binary locates the simulator from the module root (or BinaryEnv).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("imdssim: no go.mod above the working directory")
		}
		dir = parent
	}
	bin := filepath.Join(dir, "bin", "ec2-metadata-mock")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("IMDS simulator not found at %s (%v): run `make tools` from the module root, or set %s", bin, err, BinaryEnv)
	}
	return bin
}

// Start runs a simulator until the test ends (or Stop).
func Start(t testing.TB, o Options) *Sim {
	t.Helper()
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	bin := Binary(t)
	dir := t.TempDir()
	var last error
	for range 3 {
		port := o.Port
		if port == 0 {
			port = freePort(t, o.IP)
		}
		s, err := run(bin, dir, o, port)
		if err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("IMDS simulator (%s) output:\n%s", s.Endpoint, s.out.String())
				}
			})
			return s
		}
		last = err
		if o.Port != 0 {
			// A fixed port may still be held by a simulator just stopped.
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Fatalf("start IMDS simulator: %v", last)
	return nil
}

func run(bin, dir string, o Options, port int) (*Sim, error) {
	meta, doc := map[string]any{}, map[string]any{}
	if o.InstanceID != "" {
		meta["instance-id"], doc["instanceId"] = o.InstanceID, o.InstanceID
	}
	if o.PrivateIP != "" {
		meta["local-ipv4"], doc["privateIp"] = o.PrivateIP, o.PrivateIP
	}
	cfg := map[string]any{}
	if len(meta) > 0 {
		cfg["metadata"] = map[string]any{"values": meta}
		cfg["dynamic"] = map[string]any{"values": map[string]any{"instance-identity-document": doc}}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	args := []string{"-n", o.IP, "-p", strconv.Itoa(port), "-I", "-c", cfgPath}
	if o.Mode != All {
		args = append(args, string(o.Mode))
	}
	if o.NoticeAfter > 0 {
		args = append(args, "-d", strconv.Itoa(int(o.NoticeAfter.Seconds())),
			"--rebalance-delay-sec", strconv.Itoa(int(o.NoticeAfter.Seconds())))
	}
	if o.RebalanceOnly {
		args = append(args, "-d", strconv.Itoa(int((24 * time.Hour).Seconds())), "--rebalance-delay-sec", "0")
	}
	if o.TerminateAfter > 0 {
		args = append(args, "--asg-termination-delay-sec", strconv.Itoa(int(o.TerminateAfter.Seconds())))
	}
	out := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// A clean environment: AEMM_* variables and $HOME/aemm-config.json
	// would change the simulator's values.
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	s := &Sim{Endpoint: "http://" + net.JoinHostPort(o.IP, strconv.Itoa(port)), Port: port, cmd: cmd, exited: make(chan error, 1), out: out}
	go func() { s.exited <- cmd.Wait() }()
	addr := net.JoinHostPort(o.IP, strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-s.exited:
			s.exited <- err
			return nil, fmt.Errorf("simulator exited early (%v):\n%s", err, out.String())
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			conn.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("simulator did not listen on %s within 10s:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the simulator and waits for it to exit.
func (s *Sim) Stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		err := <-s.exited
		s.exited <- err
	})
}

// Output is what the simulator printed.
func (s *Sim) Output() string { return s.out.String() }

func freePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("free port on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Clone(b.buf.String())
}
