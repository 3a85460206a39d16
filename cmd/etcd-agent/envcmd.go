package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

func envCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "env",
		Short: "print ETCDCTL_* variables for the operator certificate",
		Long: "Print the ETCDCTL_* variables for this node's operator certificate, for a shell:\n\n" +
			"  eval \"$(etcd-agent env)\" && etcdctl member list -w table\n\n" +
			"The endpoints are the cluster's client URLs from the agent's report (--endpoints to name them).",
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	endpoints := c.Flags().String("endpoints", "", "client URLs (default: from the agent report)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		eps := splitList(*endpoints)
		if len(eps) == 0 {
			rep, err := agentreport.Read(cfg.Agent.StatusFile)
			if err != nil {
				return fmt.Errorf("no endpoints: the agent report %s cannot be read (%w): pass --endpoints https://HOST:2379", cfg.Agent.StatusFile, err)
			}
			if eps = reportEndpoints(rep); len(eps) == 0 {
				return fmt.Errorf("no endpoints: the agent report %s names none yet (the agent has not started etcd): pass --endpoints https://HOST:2379", cfg.Agent.StatusFile)
			}
		}
		// No ETCDCTL_API: etcdctl 3.7 has only v3 and warns about it.
		vars := [][2]string{
			{"ETCDCTL_ENDPOINTS", strings.Join(eps, ",")},
			{"ETCDCTL_CACERT", filepath.Join(cfg.PKI.Dir, pki.CACertFile)},
			{"ETCDCTL_CERT", filepath.Join(cfg.PKI.Dir, pki.OperatorCertFile)},
			{"ETCDCTL_KEY", filepath.Join(cfg.PKI.Dir, pki.OperatorKeyFile)},
		}
		for _, v := range vars {
			fmt.Fprintf(e.stdout, "export %s=%s\n", v[0], shellQuote(v[1]))
		}
		return nil
	}
	return c
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/.:,_-=+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
