package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

func localCommand(e env) *cobra.Command {
	return groupCommand("local", "run a whole cluster on this machine (try it in a minute)",
		"Run a whole cluster on this machine (try it in a minute).", localUpCommand(e))
}

// localOptions are the settings of `local up`.
type localOptions struct {
	nodes         int
	dir           string
	runtime       string
	socket        string
	firstIP       netip.Addr
	discoveryAddr string
	// metrics turns on each node's agent metrics (<ip>:2382) and etcd's
	// own metrics listener (<ip>:2381).
	metrics bool
}

func localUpCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "up",
		Short: "start an N-node local cluster and keep it running",
		Long: "Run an N-node cluster on this machine through the production code path: a local CA,\n" +
			"a TLS v3 discovery service, one agent per node on 127.0.0.x with static identity,\n" +
			"certificates, discovery, membership and readiness. Prints the status table once every\n" +
			"node is ready and runs until Ctrl-C. A node that stops (`etcd-agent leave --config DIR/nodeN/config.yaml`,\n" +
			"or a failure) is reported and the others go on. Running it again restarts the same members in\n" +
			"place, and a node that left joins again as a new member.\n" +
			"Per-node configs, certificates, data and logs are under --dir.",
		Args: noArgs,
	}
	fs := c.Flags()
	o := localOptions{}
	fs.IntVar(&o.nodes, "nodes", 3, "number of nodes (voting members)")
	fs.StringVar(&o.dir, "dir", ".local", "state directory (CA, configs, data, logs)")
	fs.StringVar(&o.runtime, "runtime", "embedded", "embedded (in-process etcd) or podman (containers through --podman-socket)")
	fs.StringVar(&o.socket, "podman-socket", "", "Podman API socket for --runtime podman (default: the rootless socket of this user)")
	first := fs.String("first-ip", "127.0.0.11", "loopback address of node 1; node i gets the i-1'th next address")
	fs.StringVar(&o.discoveryAddr, "discovery-addr", "127.0.0.1:23790", "where the local discovery service listens")
	fs.BoolVar(&o.metrics, "metrics", false, "serve each node's agent metrics on <node ip>:2382 and etcd's on <node ip>:2381")
	c.RunE = func(c *cobra.Command, _ []string) error {
		ip, err := netip.ParseAddr(*first)
		if err != nil || !ip.IsLoopback() || !ip.Is4() {
			return &config.Error{Problems: []config.Problem{{Field: "--first-ip", Value: *first, Problem: "must be an IPv4 loopback address", Fix: "use 127.0.0.11"}}}
		}
		o.firstIP = ip
		if o.nodes < 1 || o.nodes > 9 {
			return &config.Error{Problems: []config.Problem{{Field: "--nodes", Value: fmt.Sprint(o.nodes), Problem: "must be 1-9", Fix: "use 3 or 5"}}}
		}
		if o.runtime != "embedded" && o.runtime != "podman" {
			return &config.Error{Problems: []config.Problem{{Field: "--runtime", Value: o.runtime, Problem: "must be embedded or podman", Fix: "use --runtime embedded"}}}
		}
		if o.dir, err = filepath.Abs(o.dir); err != nil {
			return err
		}
		return runLocal(c.Context(), e, o)
	}
	return c
}

func runLocal(ctx context.Context, e env, o localOptions) error {
	start := time.Now()
	caCert, caKey, err := ensureLocalCA(filepath.Join(o.dir, "ca"))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "etcd-agent local: %d nodes, %s runtime, state in %s\n", o.nodes, o.runtime, o.dir)

	// 1. The discovery service, itself an etcd over TLS with client cert auth.
	discCerts := filepath.Join(o.dir, "discovery", "pki")
	discHost, _, err := net.SplitHostPort(o.discoveryAddr)
	if err != nil {
		return &config.Error{Problems: []config.Problem{{Field: "--discovery-addr", Value: o.discoveryAddr, Problem: err.Error(), Fix: "use host:port, e.g. 127.0.0.1:23790"}}}
	}
	if err := issueLocalCerts(caCert, caKey, discCerts, discHost); err != nil {
		return err
	}
	discURL := "https://" + o.discoveryAddr
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	discReady := make(chan struct{})
	discErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		discErr <- discovery.Serve(ctx, discovery.ServeConfig{
			DataDir: filepath.Join(o.dir, "discovery", "data"), ListenClientURL: discURL,
			CertFile: filepath.Join(discCerts, pki.ServerCertFile), KeyFile: filepath.Join(discCerts, pki.ServerKeyFile),
			TrustedCAFile: filepath.Join(discCerts, pki.CACertFile), ClientCertAuth: true,
		}, func(string) { close(discReady) })
	}()
	select {
	case <-discReady:
	case err := <-discErr:
		return fmt.Errorf("start local discovery service: %w", err)
	case <-ctx.Done():
		return nil
	}
	token, err := localToken(ctx, o, discURL, discCerts)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "discovery: %s token %s (size %d)\n", discURL, token, o.nodes)

	// 2. One agent per node, each from its own config file, as on a real node.
	agents := make([]*agent.Agent, o.nodes)
	agentsStart := time.Now()
	var firstCfg *config.Config
	errs := make(chan error, o.nodes)
	ip := o.firstIP
	for i := range o.nodes {
		nodeDir := filepath.Join(o.dir, fmt.Sprintf("node%d", i+1))
		cfg, err := writeLocalConfig(o, nodeDir, ip, caCert, caKey, discURL, token)
		if err != nil {
			return err
		}
		if firstCfg == nil {
			firstCfg = cfg
		}
		// A node that left (`etcd-agent leave`) comes back as a new
		// member: the local trial shows the lifecycle instead of keeping
		// the node out until its marker is deleted by hand, as a real
		// node does.
		if m, ok := sidefile.ReadLeaveMarker(cfg.Node.DataDir); ok && m.State == sidefile.Left {
			if err := sidefile.RemoveLeaveMarker(cfg.Node.DataDir); err != nil {
				return fmt.Errorf("node%d: %w", i+1, err)
			}
			fmt.Fprintf(e.stdout, "node%d left the cluster (%s): it joins again as a new member\n", i+1, m)
		}
		logFile, err := os.OpenFile(filepath.Join(nodeDir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open node log: %w", err)
		}
		defer logFile.Close()
		logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
		rt, err := agent.NewRuntime(cfg, logger)
		if err != nil {
			return err
		}
		a, err := agent.New(agent.Options{Config: cfg, Identity: agent.NewIdentity(cfg, logger), Runtime: rt,
			Logger: logger, Version: version, StopEtcdOnExit: true})
		if err != nil {
			return err
		}
		agents[i] = a
		fmt.Fprintf(e.stdout, "node%d: %s  log %s\n", i+1, ip, logFile.Name())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil {
				errs <- fmt.Errorf("node%d: %w", i+1, err)
			}
		}()
		ip = ip.Next()
	}

	// 3. Wait for every node's READY, then show the cluster.
	for i, a := range agents {
		select {
		case <-a.Ready():
		case err := <-errs:
			cancel()
			wg.Wait()
			return err
		case <-ctx.Done():
			fmt.Fprintln(e.stdout, "interrupted before the cluster was ready; stopping")
			wg.Wait()
			return nil
		case <-time.After(3 * time.Minute):
			cancel()
			wg.Wait()
			return fmt.Errorf("node%d not ready after 3m: %s (see its agent.log)", i+1, a.Report().Message)
		}
	}
	fmt.Fprintf(e.stdout, "\nall %d nodes ready in %s (agents: %s from their start to the last READY)\n\n",
		o.nodes, time.Since(start).Round(10*time.Millisecond), time.Since(agentsStart).Round(10*time.Millisecond))
	if err := printLocalStatus(ctx, e.stdout, firstCfg); err != nil {
		fmt.Fprintf(e.stderr, "status: %v\n", err)
	}
	var endpoints []string
	for _, a := range agents {
		endpoints = append(endpoints, a.Report().ClientURL)
	}
	fmt.Fprintf(e.stdout, "\nendpoints: %s\n", strings.Join(endpoints, ","))
	if o.metrics {
		var urls []string
		for _, a := range agents {
			urls = append(urls, "http://"+a.Report().PrivateIP+":2382/metrics")
		}
		fmt.Fprintf(e.stdout, "metrics: %s (etcd's own on port 2381)\n", strings.Join(urls, " "))
	}
	fmt.Fprintf(e.stdout, "try: etcd-agent status --config %s\n", filepath.Join(o.dir, "node1", "config.yaml"))
	fmt.Fprintln(e.stdout, "Ctrl-C stops the cluster (data is kept; run again to restart the same members).")

	// From here a node that stops (left, or failed) is reported and the
	// others go on: the trial shows what a real cluster does.
	stopped := 0
wait:
	for stopped < o.nodes {
		select {
		case <-ctx.Done():
			break wait
		case err := <-errs:
			stopped++
			fmt.Fprintf(e.stdout, "\n%v\nthe other nodes go on; `etcd-agent local up` again brings it back\n", err)
		}
	}
	fmt.Fprintln(e.stdout, "\nstopping...")
	wg.Wait()
	fmt.Fprintln(e.stdout, "stopped")
	return nil
}

func ensureLocalCA(dir string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile)
	if _, err := os.Stat(certPath); err == nil {
		return certPath, keyPath, nil
	}
	if _, _, err := pki.InitCA(dir, pki.CAOptions{CommonName: "etcd-agent local CA"}, time.Now()); err != nil {
		return "", "", fmt.Errorf("create local CA: %w", err)
	}
	return certPath, keyPath, nil
}

func issueLocalCerts(caCert, caKey, dir, host string) error {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("local certs: %q is not an IP: %w", host, err)
	}
	ca, err := pki.LoadCA(caCert, caKey, time.Now())
	if err != nil {
		return err
	}
	_, err = ca.EnsureNodeCerts(pki.NodeRequest{Dir: dir, NodeIP: ip, Validity: 365 * 24 * time.Hour,
		RenewBefore: 30 * 24 * time.Hour, Now: time.Now()})
	return err
}

// localToken reuses the token of an earlier run (its members have data and
// restart in place) or creates one.
func localToken(ctx context.Context, o localOptions, discURL, certDir string) (string, error) {
	path := filepath.Join(o.dir, "discovery", "token")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	tlsCfg, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return "", err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{discURL}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return "", fmt.Errorf("connect to local discovery: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	token, err := discovery.NewToken(ctx, cli, o.nodes)
	if err != nil {
		return "", err
	}
	return token, os.WriteFile(path, []byte(token+"\n"), 0o644)
}

// writeLocalConfig writes the node's config.yaml and loads it back through
// config.Load, exactly as `etcd-agent run` would.
func writeLocalConfig(o localOptions, nodeDir string, ip netip.Addr, caCert, caKey, discURL, token string) (*config.Config, error) {
	if err := os.MkdirAll(nodeDir, 0o700); err != nil {
		return nil, fmt.Errorf("create node dir: %w", err)
	}
	path := filepath.Join(nodeDir, "config.yaml")
	const header = "Written by `etcd-agent local up`; a production node's config differs only in identity and paths."
	if err := config.WriteFile(path, header, localNodeConfig(o, nodeDir, ip, caCert, caKey, discURL, token)); err != nil {
		return nil, fmt.Errorf("write node config: %w", err)
	}
	cfg, _, err := config.Load(config.Source{Path: path, Env: os.LookupEnv, DefaultImageTag: defaultEtcdVersion, UID: os.Getuid()})
	return cfg, err
}

// localNodeConfig is what a local node's config file sets; the agent
// defaults the rest.
func localNodeConfig(o localOptions, nodeDir string, ip netip.Addr, caCert, caKey, discURL, token string) *config.Config {
	cfg := &config.Config{
		Cluster: config.Cluster{Name: "local", Size: o.nodes, Discovery: config.Discovery{Endpoints: []string{discURL}, Token: token}},
		Node:    config.Node{Identity: "static", IP: ip.String(), DataDir: filepath.Join(nodeDir, "data")},
		PKI:     config.PKI{CACert: caCert, CAKey: caKey, Dir: filepath.Join(nodeDir, "pki")},
		Etcd:    config.Etcd{Runtime: o.runtime, QuotaBackendBytes: 2 << 30},
		Agent:   config.Agent{StatusFile: filepath.Join(nodeDir, "status.json"), HealthInterval: config.Duration(2 * time.Second)},
		// Each node's own loopback address: the nodes share this machine.
		FleetLock: config.FleetLock{Address: net.JoinHostPort(ip.String(), "2384")},
	}
	if o.metrics {
		cfg.Etcd.ExtraFlags = []string{fmt.Sprintf("--listen-metrics-urls=http://%s", net.JoinHostPort(ip.String(), "2381"))}
		cfg.Metrics = config.Metrics{Enabled: true, Address: net.JoinHostPort(ip.String(), "2382")}
	}
	if o.runtime == "podman" {
		cfg.Podman = config.Podman{Socket: o.socket, ContainerName: "etcd-local-" + strings.ReplaceAll(ip.String(), ".", "-")}
	}
	return cfg
}

// printLocalStatus renders the same view `etcd-agent status` shows, as the
// operator of node1 would see it.
func printLocalStatus(ctx context.Context, w io.Writer, cfg *config.Config) error {
	v, err := gatherStatus(ctx, cfg, nil, 0)
	if err != nil {
		return err
	}
	return status.Render(w, v, "table")
}
