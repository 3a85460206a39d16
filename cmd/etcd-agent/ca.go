package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/pki"
)

func caCommand(e env) *cobra.Command {
	return groupCommand("ca", "manage the cluster CA", "Create the cluster CA and drive its rotation.", caInitCommand(e), caRotateCommand(e))
}

// createdCA is `ca init -o json`.
type createdCA struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

func caInitCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "create a new CA (ca.crt, ca.key)",
		Long: "Create the cluster CA: DIR/ca.crt (0644) and DIR/ca.key (0600).\n" +
			"Ship both to every node (the Butane renderer does); keep the key out of EC2 user data.",
		Args: noArgs,
	}
	dir := c.Flags().String("dir", "", "directory to write ca.crt and ca.key into (created 0700 if missing)")
	cn := c.Flags().String("cn", "etcd-agent CA", "CA certificate common name")
	validity := c.Flags().String("validity", "3650d", "CA validity (e.g. 3650d, 87600h)")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		if *dir == "" {
			return &config.Error{Problems: []config.Problem{{Field: "--dir", Problem: "is required", Fix: "pass --dir /path/to/ca"}}}
		}
		v, err := config.ParseDuration(*validity)
		if err != nil {
			return &config.Error{Problems: []config.Problem{{Field: "--validity", Value: *validity, Problem: err.Error(), Fix: "e.g. 3650d"}}}
		}
		certPath, keyPath, err := pki.InitCA(*dir, pki.CAOptions{CommonName: *cn, Validity: v.D()}, time.Now())
		if err != nil {
			return fmt.Errorf("create CA: %w", err)
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, createdCA{Cert: certPath, Key: keyPath})
		}
		fmt.Fprintf(e.stdout, "CA certificate: %s\nCA key:         %s (mode 0600: keep it secret)\n", certPath, keyPath)
		return nil
	}
	return c
}
