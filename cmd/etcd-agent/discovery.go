package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

func discoveryCommand() *command {
	return &command{name: "discovery", summary: "create, inspect or serve v3 discovery tokens",
		sub: []*command{discoveryNewCommand(), discoveryShowCommand(), discoveryServeCommand()}}
}

// discoveryClientFlags reach a v3 discovery cluster over TLS.
type discoveryClientFlags struct {
	endpoints, certDir, cert, key *string
}

func addDiscoveryClientFlags(fs interface {
	String(name, value, usage string) *string
}) discoveryClientFlags {
	return discoveryClientFlags{
		endpoints: fs.String("endpoints", "", "discovery cluster client URLs, comma-separated (required)"),
		certDir:   fs.String("cert-dir", "", "directory with ca.crt, client.crt, client.key (e.g. a node's pki dir)"),
		cert:      fs.String("cert", "", "client certificate (default: CERT-DIR/client.crt)"),
		key:       fs.String("key", "", "client key (default: CERT-DIR/client.key)"),
	}
}

func (f discoveryClientFlags) client() (*clientv3.Client, error) {
	if *f.endpoints == "" {
		return nil, &config.Error{Problems: []config.Problem{{Field: "--endpoints", Problem: "is required", Fix: "pass the discovery cluster's client URLs, e.g. https://10.0.0.10:2379"}}}
	}
	cfg := clientv3.Config{Endpoints: strings.Split(*f.endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if *f.certDir != "" || *f.cert != "" {
		cert, key := *f.cert, *f.key
		if cert == "" {
			cert, key = pki.ClientCertFile, pki.ClientKeyFile
		}
		tlsCfg, err := pki.ClientTLS(*f.certDir, cert, key)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tlsCfg
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to discovery: %w", err)
	}
	return cli, nil
}

func discoveryNewCommand() *command {
	const usage = "etcd-agent discovery new --size N --endpoints URLS [--cert-dir DIR]"
	const summary = "Create a v3 discovery token for a new cluster of N members and print it.\n" +
		"Put the token into cluster.discovery.token of every founding node's config."
	return &command{name: "new", usage: usage, summary: "create a token for a new cluster",
		run: func(ctx context.Context, e env, args []string) error {
			fs := newFlagSet(e, "discovery new", usage, summary)
			size := fs.Int("size", 0, "number of founding members (3 or 5)")
			cf := addDiscoveryClientFlags(fs)
			if err := parseFlags(fs, args, 0); err != nil {
				return err
			}
			if *size < 1 {
				return &config.Error{Problems: []config.Problem{{Field: "--size", Value: fmt.Sprint(*size), Problem: "must be at least 1", Fix: "use --size 3"}}}
			}
			if w := discovery.SizeWarning(*size); w != "" {
				fmt.Fprintln(e.stderr, "warning:", w)
			}
			cli, err := cf.client()
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			token, err := discovery.NewToken(ctx, cli, *size)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, token)
			return nil
		}}
}

func discoveryShowCommand() *command {
	const usage = "etcd-agent discovery show TOKEN --endpoints URLS [--cert-dir DIR]"
	const summary = "Show a token's size and who registered, in registration order (the first SIZE found the cluster)."
	return &command{name: "show", usage: usage, summary: "show who registered under a token",
		run: func(ctx context.Context, e env, args []string) error {
			fs := newFlagSet(e, "discovery show", usage, summary)
			cf := addDiscoveryClientFlags(fs)
			// Accept the token before or after the flags.
			var token string
			if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
				token, args = args[0], args[1:]
			}
			if err := parseFlags(fs, args, 1); err != nil {
				return err
			}
			if token == "" {
				token = fs.Arg(0)
			}
			if token == "" {
				return &config.Error{Problems: []config.Problem{{Field: "TOKEN", Problem: "is required", Fix: "etcd-agent discovery show TOKEN --endpoints ..."}}}
			}
			cli, err := cf.client()
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			size, regs, err := discovery.ShowToken(ctx, cli, token)
			if err != nil {
				return err
			}
			formation, err := discovery.ReadFormation(ctx, cli, token)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "token %s: size %d, %d registered\n", token, size, len(regs))
			if formation.Formed != nil {
				fmt.Fprintf(e.stdout, "formed: %s\n", formation.Formed)
			} else {
				fmt.Fprintf(e.stdout, "formed: not recorded\n")
			}
			for i, r := range regs {
				role := "founding"
				if i >= size {
					role = "extra (registry was full)"
				}
				if st, ok := formation.Started[r.ID]; ok {
					role += ", etcd started " + st.At.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(e.stdout, "  %d. %-20s %-28s id %s rev %d  %s\n", i+1, r.Name, r.PeerURL, r.ID, r.CreateRevision, role)
			}
			return nil
		}}
}

func discoveryServeCommand() *command {
	const usage = "etcd-agent discovery serve --listen https://IP:2379 --data-dir DIR --cert-dir DIR"
	const summary = "Run a TLS v3 discovery service (an embedded single-member etcd) for teams that do not\n" +
		"want a public discovery service. --cert-dir holds ca.crt, server.crt, server.key (issue them\n" +
		"with the cluster CA); clients must present a certificate from that CA."
	return &command{name: "serve", usage: usage, summary: "run a TLS discovery service",
		run: func(ctx context.Context, e env, args []string) error {
			fs := newFlagSet(e, "discovery serve", usage, summary)
			listen := fs.String("listen", "", "client URL to serve on, https://IP:PORT (required)")
			dataDir := fs.String("data-dir", "", "data directory (required)")
			certDir := fs.String("cert-dir", "", "directory with ca.crt, server.crt, server.key (required)")
			noClientAuth := fs.Bool("no-client-cert-auth", false, "accept clients without a certificate (not recommended)")
			listenPeer := fs.String("listen-peer", "", "peer URL of the service's single member, https://IP:PORT (default: a free port on 127.0.0.1)")
			if err := parseFlags(fs, args, 0); err != nil {
				return err
			}
			var ps []config.Problem
			for _, f := range [][2]string{{"--listen", *listen}, {"--data-dir", *dataDir}, {"--cert-dir", *certDir}} {
				if f[1] == "" {
					ps = append(ps, config.Problem{Field: f[0], Problem: "is required", Fix: "see etcd-agent discovery serve --help"})
				}
			}
			if len(ps) > 0 {
				return &config.Error{Problems: ps}
			}
			logger := newLogger(e, "info", "text")
			return discovery.Serve(ctx, discovery.ServeConfig{
				DataDir: *dataDir, ListenClientURL: *listen, ListenPeerURL: *listenPeer,
				CertFile: *certDir + "/" + pki.ServerCertFile, KeyFile: *certDir + "/" + pki.ServerKeyFile,
				TrustedCAFile: *certDir + "/" + pki.CACertFile, ClientCertAuth: !*noClientAuth, Logger: logger,
			}, func(endpoint string) {
				fmt.Fprintf(e.stdout, "discovery service ready at %s\n", endpoint)
			})
		}}
}
