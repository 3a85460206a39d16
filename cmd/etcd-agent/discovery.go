package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

func discoveryCommand(e env) *cobra.Command {
	return groupCommand("discovery", "create, inspect or serve v3 discovery tokens", "Create, inspect or serve v3 discovery tokens.",
		discoveryNewCommand(e), discoveryShowCommand(e), discoveryServeCommand(e))
}

// discoveryClientFlags reach a v3 discovery cluster over TLS.
type discoveryClientFlags struct {
	endpoints, certDir, cert, key *string
}

func addDiscoveryClientFlags(fs *pflag.FlagSet) discoveryClientFlags {
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

// newToken is `discovery new -o json`.
type newToken struct {
	Token string `json:"token"`
	Size  int    `json:"size"`
}

func discoveryNewCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "new --size N --endpoints URLS [--cert-dir DIR]",
		Short: "create a token for a new cluster",
		Long: "Create a v3 discovery token for a new cluster of N members and print it.\n" +
			"Put the token into cluster.discovery.token of every founding node's config.",
		Args: noArgs,
	}
	size := c.Flags().Int("size", 0, "number of founding members (3 or 5)")
	cf := addDiscoveryClientFlags(c.Flags())
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
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
		ctx, cancel := context.WithTimeout(c.Context(), 15*time.Second)
		defer cancel()
		token, err := discovery.NewToken(ctx, cli, *size)
		if err != nil {
			return err
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, newToken{Token: token, Size: *size})
		}
		fmt.Fprintln(e.stdout, token)
		return nil
	}
	return c
}

// tokenView is `discovery show -o json`.
type tokenView struct {
	Token      string              `json:"token"`
	Size       int                 `json:"size"`
	Formed     string              `json:"formed,omitempty"`
	Registered []tokenRegistration `json:"registered"`
}

type tokenRegistration struct {
	Name           string `json:"name"`
	PeerURL        string `json:"peer_url"`
	ID             string `json:"id"`
	CreateRevision int64  `json:"create_revision"`
	Founding       bool   `json:"founding"`
	Started        string `json:"started,omitempty"`
}

func discoveryShowCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "show TOKEN --endpoints URLS [--cert-dir DIR]",
		Short: "show who registered under a token",
		Long:  "Show a token's size and who registered, in registration order (the first SIZE found the cluster).",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("unexpected argument %q", args[1])
			}
			return nil
		},
	}
	cf := addDiscoveryClientFlags(c.Flags())
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return &config.Error{Problems: []config.Problem{{Field: "TOKEN", Problem: "is required", Fix: "etcd-agent discovery show TOKEN --endpoints ..."}}}
		}
		token := args[0]
		cli, err := cf.client()
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(c.Context(), 15*time.Second)
		defer cancel()
		size, regs, err := discovery.ShowToken(ctx, cli, token)
		if err != nil {
			return err
		}
		formation, err := discovery.ReadFormation(ctx, cli, token)
		if err != nil {
			return err
		}
		view := tokenView{Token: token, Size: size, Registered: []tokenRegistration{}}
		if formation.Formed != nil {
			view.Formed = fmt.Sprint(formation.Formed)
		}
		for i, r := range regs {
			reg := tokenRegistration{Name: r.Name, PeerURL: r.PeerURL, ID: hexID(r.ID), CreateRevision: r.CreateRevision, Founding: i < size}
			if st, ok := formation.Started[r.ID]; ok {
				reg.Started = st.At.UTC().Format(time.RFC3339)
			}
			view.Registered = append(view.Registered, reg)
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, view)
		}
		fmt.Fprintf(e.stdout, "token %s: size %d, %d registered\n", token, size, len(regs))
		if view.Formed != "" {
			fmt.Fprintf(e.stdout, "formed: %s\n", view.Formed)
		} else {
			fmt.Fprintf(e.stdout, "formed: not recorded\n")
		}
		for i, r := range view.Registered {
			role := "founding"
			if !r.Founding {
				role = "extra (registry was full)"
			}
			if r.Started != "" {
				role += ", etcd started " + r.Started
			}
			fmt.Fprintf(e.stdout, "  %d. %-20s %-28s id %s rev %d  %s\n", i+1, r.Name, r.PeerURL, r.ID, r.CreateRevision, role)
		}
		return nil
	}
	return c
}

func discoveryServeCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "serve --listen https://IP:2379 --data-dir DIR --cert-dir DIR",
		Short: "run a TLS discovery service",
		Long: "Run a TLS v3 discovery service (an embedded single-member etcd) for teams that do not\n" +
			"want a public discovery service. --cert-dir holds ca.crt, server.crt, server.key (issue them\n" +
			"with the cluster CA); clients must present a certificate from that CA.",
		Args: noArgs,
	}
	fs := c.Flags()
	listen := fs.String("listen", "", "client URL to serve on, https://IP:PORT (required)")
	dataDir := fs.String("data-dir", "", "data directory (required)")
	certDir := fs.String("cert-dir", "", "directory with ca.crt, server.crt, server.key (required)")
	noClientAuth := fs.Bool("no-client-cert-auth", false, "accept clients without a certificate (not recommended)")
	listenPeer := fs.String("listen-peer", "", "peer URL of the service's single member, https://IP:PORT (default: a free port on 127.0.0.1)")
	c.RunE = func(c *cobra.Command, _ []string) error {
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
		return discovery.Serve(c.Context(), discovery.ServeConfig{
			DataDir: *dataDir, ListenClientURL: *listen, ListenPeerURL: *listenPeer,
			CertFile: *certDir + "/" + pki.ServerCertFile, KeyFile: *certDir + "/" + pki.ServerKeyFile,
			TrustedCAFile: *certDir + "/" + pki.CACertFile, ClientCertAuth: !*noClientAuth, Logger: logger,
		}, func(endpoint string) {
			fmt.Fprintf(e.stdout, "discovery service ready at %s\n", endpoint)
		})
	}
	return c
}
