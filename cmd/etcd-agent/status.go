package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent/config"
	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/pki"
)

func statusCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "show the node, its members and their health (exit 0 only when all is well)",
		Long: "Show this node's agent phase and certificate expiry, the member list, per-endpoint status\n" +
			"(leader, raft term/index, DB size against quota, version, alarms) and health with latency.\n" +
			"Runs as the operator (the etcd user) with the operator client certificate; needs no root.\n" +
			"Every member is asked in parallel, each call with its own deadline (--timeout, 1s): a member that is down,\n" +
			"frozen or refusing shows why in its row (\"no answer in 1s\", \"connection refused\", …) and costs at most that.\n" +
			"Then every voter's HashKV is compared at a common revision (the HASHKV column and the Data line):\n" +
			"two members with the same compact revision but different hashes have diverged.\n\n" +
			"Problems are listed most severe first, each with a stable code, a severity (critical, warning, info),\n" +
			"the text and what to do; `-o json` gives the same under summary.problems.\n\n" +
			"Exit codes: 0 every member healthy, a leader, no alarm, no HashKV mismatch, as many voters as\n" +
			"cluster.size, this node's agent healthy (no problem of severity warning or worse); 3 anything else\n" +
			"(the table's last lines say what), including a node where the agent never ran (agent-never-ran:\n" +
			"no report, no operator certificate); 1 status itself failed (e.g. the operator certificate exists\n" +
			"but cannot be read by this user); 2 usage error; 78 configuration error.",
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	out := addOutputFlag(c.Flags())
	timeout := c.Flags().Duration("timeout", status.DefaultTimeout, "deadline of each call to each member")
	endpoints := c.Flags().String("endpoints", "", "client URLs to ask first (default: from the agent report, else this node)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		v, err := gatherStatus(c.Context(), cfg, splitList(*endpoints), *timeout)
		if err != nil {
			return err
		}
		if *out == formatYAML {
			err = printDoc(e.stdout, *out, v)
		} else {
			err = status.Render(e.stdout, v, string(*out))
		}
		if err != nil {
			return fmt.Errorf("render status: %w", err)
		}
		if code := status.ExitCode(v); code != 0 {
			return &exitError{code: code}
		}
		return nil
	}
	return c
}

// gatherStatus builds the status view for the node configured by cfg: its
// published report, its certificates, and every member reachable from the
// endpoints (explicit ones, else the report's, else this node's own).
func gatherStatus(ctx context.Context, cfg *config.Config, endpoints []string, timeout time.Duration) (status.View, error) {
	rep, repErr := agentreport.Read(cfg.Agent.StatusFile)
	opts := status.Options{Timeout: timeout, Quota: int64(cfg.Etcd.QuotaBackendBytes), Size: cfg.Cluster.Size,
		ReportErr: repErr, CertDir: cfg.PKI.Dir}
	if repErr == nil {
		opts.Report = &rep
	}
	tlsCfg, err := pki.ClientTLS(cfg.PKI.Dir, pki.OperatorCertFile, pki.OperatorKeyFile)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist) && errors.Is(repErr, fs.ErrNotExist):
		// Neither a report nor a certificate: the node is not a member,
		// which status reports like any unhealthy node (exit 3).
		return status.NeverRan(opts, fmt.Sprintf("no agent report at %s and no operator certificate in %s, so there is nothing to ask the cluster with",
			cfg.Agent.StatusFile, cfg.PKI.Dir)), nil
	case err != nil:
		return status.View{}, fmt.Errorf("load the operator certificate from pki.dir %s (run status as the agent's user): %w", cfg.PKI.Dir, err)
	}
	opts.TLS = tlsCfg
	opts.Endpoints = endpoints
	if len(opts.Endpoints) == 0 && repErr == nil {
		opts.Endpoints = reportEndpoints(rep)
	}
	if len(opts.Endpoints) == 0 {
		opts.Endpoints = []string{localClientURL(cfg)}
	}
	return status.Gather(ctx, opts), nil
}

// localClientURL is this node's own client URL when nothing better is known:
// its static IP, else loopback, where every member also listens.
func localClientURL(cfg *config.Config) string {
	host := "127.0.0.1"
	if cfg.Node.IP != "" {
		host = cfg.Node.IP
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(cfg.Etcd.ClientPort))
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
