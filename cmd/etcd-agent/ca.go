package main

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/pki"
)

func caCommand() *command {
	return &command{name: "ca", summary: "manage the cluster CA", sub: []*command{caInitCommand(), caRotateCommand()}}
}

func caInitCommand() *command {
	const usage = "etcd-agent ca init --dir DIR [--cn NAME] [--validity 3650d]"
	const summary = "Create the cluster CA: DIR/ca.crt (0644) and DIR/ca.key (0600).\n" +
		"Ship both to every node (the Butane renderer does); keep the key out of EC2 user data."
	return &command{name: "init", usage: usage, summary: "create a new CA (ca.crt, ca.key)",
		run: func(ctx context.Context, e env, args []string) error {
			fs := newFlagSet(e, "ca init", usage, summary)
			dir := fs.String("dir", "", "directory to write ca.crt and ca.key into (created 0700 if missing)")
			cn := fs.String("cn", "etcd-agent CA", "CA certificate common name")
			validity := fs.String("validity", "3650d", "CA validity (e.g. 3650d, 87600h)")
			if err := parseFlags(fs, args, 0); err != nil {
				return err
			}
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
			fmt.Fprintf(e.stdout, "CA certificate: %s\nCA key:         %s (mode 0600: keep it secret)\n", certPath, keyPath)
			return nil
		}}
}
