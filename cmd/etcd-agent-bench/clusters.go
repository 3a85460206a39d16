package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/runtime/podman"
	"github.com/etcd-agent/etcd-agent/pki"
)

// readyTimeout bounds a cluster start.
const readyTimeout = 3 * time.Minute

// cluster is a running 3-node cluster, agent-run or plain.
type cluster struct {
	endpoints []string
	tls       *tls.Config
	certDir   string // a node's cert dir (client and operator pairs)
	stop      func() error
}

func (c *cluster) client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: c.endpoints, TLS: c.tls, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func loopbackIPs(first string, n int) []netip.Addr {
	ip := netip.MustParseAddr(first)
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = ip
		ip = ip.Next()
	}
	return out
}

func clientURLs(ips []netip.Addr) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, "https://"+ip.String()+":2379")
	}
	return out
}

// startAgents runs `etcd-agent local up` (the README's main command) and
// returns once it prints that every node is ready, with the time that took
// from the exec and the part of it the agents took (after the local CA and
// discovery service were up).
func (b *bench) startAgents(ctx context.Context, dir, firstIP, discAddr, rt string) (*cluster, time.Duration, time.Duration, error) {
	args := []string{"local", "up", "--nodes", "3", "--dir", dir, "--first-ip", firstIP, "--discovery-addr", discAddr, "--runtime", rt}
	if rt == "podman" {
		args = append(args, "--podman-socket", b.o.podman)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, 0, err
	}
	cmd := exec.Command(filepath.Join(b.o.bin, "etcd-agent"), args...)
	stderr, err := os.Create(dir + ".stderr")
	if err != nil {
		return nil, 0, 0, err
	}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, 0, fmt.Errorf("start etcd-agent local up: %w", err)
	}
	ready := make(chan [2]time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "all 3 nodes ready") {
				// "... (agents: 1.02s from their start to the last READY)"
				_, rest, _ := strings.Cut(line, "(agents: ")
				agents, _ := time.ParseDuration(strings.Fields(rest + " x")[0])
				ready <- [2]time.Duration{time.Since(start), agents}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("etcd-agent local up did not stop within 90s")
		}
		return stderr.Close()
	}
	var took [2]time.Duration
	select {
	case took = <-ready:
	case err := <-exited:
		return nil, 0, 0, fmt.Errorf("etcd-agent local up exited before ready: %v (see %s.stderr and %s/node*/agent.log)", err, dir, dir)
	case <-time.After(readyTimeout):
		_ = stop()
		return nil, 0, 0, fmt.Errorf("etcd-agent local up not ready after %s", readyTimeout)
	case <-ctx.Done():
		_ = stop()
		return nil, 0, 0, ctx.Err()
	}
	certDir := filepath.Join(dir, "node1", "pki")
	tlsCfg, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		_ = stop()
		return nil, 0, 0, err
	}
	return &cluster{endpoints: clientURLs(loopbackIPs(firstIP, 3)), tls: tlsCfg, certDir: certDir, stop: stop}, took[0], took[1], nil
}

// plainSpecs are three members with the flags the agent gives etcd (the
// local-mode quota and compaction), bootstrapped from a static list: what an
// operator would start by hand.
func (b *bench) plainSpecs(dir string, ips []netip.Addr) ([]etcdconf.Spec, error) {
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{CommonName: "bench plain CA"}, time.Now())
	if err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA(caCert, caKey, time.Now())
	if err != nil {
		return nil, err
	}
	var specs []etcdconf.Spec
	var initial []string
	for i, ip := range ips {
		s := etcdconf.Spec{
			Name: fmt.Sprintf("plain-%d", i+1), NodeIP: ip,
			DataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1), "data"), CertDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1), "pki"),
			QuotaBackendBytes: 2 << 30, AutoCompactionMode: "periodic", AutoCompactionRetention: time.Hour.String(),
			InitialClusterState: "new", InitialClusterToken: "plain-bench",
		}
		if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: s.CertDir, NodeIP: ip, Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
			return nil, err
		}
		initial = append(initial, s.Name+"="+s.PeerURL())
		specs = append(specs, s)
	}
	for i := range specs {
		specs[i].InitialCluster = strings.Join(initial, ",")
	}
	return specs, nil
}

// startPlain starts plain etcd processes and returns once every member
// answers a linearizable read, with the time from the first exec.
func (b *bench) startPlain(ctx context.Context, dir string, ips []netip.Addr) (*cluster, time.Duration, error) {
	specs, err := b.plainSpecs(dir, ips)
	if err != nil {
		return nil, 0, err
	}
	var cmds []*exec.Cmd
	stop := func() error {
		for _, c := range cmds {
			_ = c.Process.Signal(os.Interrupt)
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
		return nil
	}
	start := time.Now()
	for _, s := range specs {
		cmd := exec.Command(filepath.Join(b.o.bin, "etcd"), append(s.Flags(), "--log-level=warn")...)
		logf, err := os.Create(filepath.Join(filepath.Dir(s.DataDir), "etcd.log"))
		if err != nil {
			return nil, 0, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			_ = stop()
			return nil, 0, fmt.Errorf("start plain etcd: %w", err)
		}
		cmds = append(cmds, cmd)
	}
	return b.waitPlain(ctx, specs, start, stop)
}

// startPlainContainers starts the same plain members as containers through
// the Podman socket (what `podman run` by hand does), no agent involved.
func (b *bench) startPlainContainers(ctx context.Context, dir string, ips []netip.Addr) (*cluster, time.Duration, error) {
	specs, err := b.plainSpecs(dir, ips)
	if err != nil {
		return nil, 0, err
	}
	var rts []*podman.Runtime
	stop := func() error {
		var errs []error
		for _, rt := range rts {
			errs = append(errs, rt.Remove(context.Background()))
		}
		return errors.Join(errs...)
	}
	start := time.Now()
	for _, s := range specs {
		rt, err := podman.New(podman.Options{Socket: b.o.podman, Image: defaultImage(), ContainerName: "etcd-bench-" + s.Name, StopTimeout: 10 * time.Second})
		if err != nil {
			return nil, 0, err
		}
		if _, err := rt.Ensure(ctx, s); err != nil {
			_ = stop()
			return nil, 0, fmt.Errorf("start plain etcd container: %w", err)
		}
		rts = append(rts, rt)
	}
	return b.waitPlain(ctx, specs, start, stop)
}

// waitPlain waits until every member answers a linearizable read and returns
// the cluster with the time since start; on failure it stops the members.
func (b *bench) waitPlain(ctx context.Context, specs []etcdconf.Spec, start time.Time, stop func() error) (c *cluster, took time.Duration, err error) {
	defer func() {
		if err != nil {
			_ = stop()
		}
	}()
	tlsCfg, err := pki.ClientTLS(specs[0].CertDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return nil, 0, err
	}
	var eps []string
	for _, s := range specs {
		eps = append(eps, s.ClientURL())
	}
	deadline := time.Now().Add(readyTimeout)
	for _, ep := range eps {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, 0, err
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := cli.Get(rctx, "health")
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				cli.Close()
				return nil, 0, fmt.Errorf("plain etcd %s not healthy: %w", ep, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cli.Close()
	}
	return &cluster{endpoints: eps, tls: tlsCfg, certDir: specs[0].CertDir, stop: stop}, time.Since(start), nil
}
