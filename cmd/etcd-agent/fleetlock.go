package main

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

func fleetlockCommand() *command {
	return &command{name: "fleetlock", summary: "coordinated OS reboots (Zincati's FleetLock slots)", sub: []*command{fleetlockReleaseCommand()}}
}

func fleetlockReleaseCommand() *command {
	const usage = "etcd-agent fleetlock release [--id ID] [--group GROUP] [--force] [--endpoints URL,...] [--config PATH]"
	const summary = "Free a reboot slot by hand (`etcd-agent status` shows who holds one, its group and since when).\n" +
		"Refused while its holder is still rebooting (its member in the cluster but not a healthy, caught-up\n" +
		"voter): freeing it then could let another node reboot while this one is down. --force frees it anyway,\n" +
		"for a node that is gone for good (the agents also free such a slot by themselves once its member was\n" +
		"removed or replaced, or has been down longer than cluster.deadMemberGrace).\n" +
		"Runs as the operator with the operator client certificate, like status."
	return &command{name: "release", usage: usage, summary: "free a reboot slot by hand (refused while its holder reboots, unless --force)",
		run: func(ctx context.Context, e env, args []string) error {
			fs := newFlagSet(e, "fleetlock release", usage, summary)
			cf := addConfigFlags(fs)
			id := fs.String("id", "", "the holder's Zincati ID (default: the only holder)")
			group := fs.String("group", "", "the holder's group (default: any)")
			force := fs.Bool("force", false, "free it even while its holder is rebooting")
			endpoints := fs.String("endpoints", "", "client URLs to ask (default: from the agent report, else this node)")
			if err := parseFlags(fs, args, 0); err != nil {
				return err
			}
			cfg, _, err := cf.load(e)
			if err != nil {
				return err
			}
			eps := splitList(*endpoints)
			if len(eps) == 0 {
				if rep, err := agentreport.Read(cfg.Agent.StatusFile); err == nil {
					eps = rep.Endpoints
				}
			}
			if len(eps) == 0 {
				eps = []string{localClientURL(cfg)}
			}
			tlsCfg, err := pki.ClientTLS(cfg.PKI.Dir, pki.OperatorCertFile, pki.OperatorKeyFile)
			if err != nil {
				return fmt.Errorf("load the operator certificate from pki.dir %s (has the agent run on this node?): %w", cfg.PKI.Dir, err)
			}
			cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				return fmt.Errorf("connect to %v: %w", eps, err)
			}
			defer cli.Close()
			h, err := fleetlock.ReleaseByHand(ctx, cli, *id, *group, *force)
			if err != nil {
				return fmt.Errorf("fleetlock release: %w", err)
			}
			fmt.Fprintf(e.stdout, "freed slot %d of group %s, held by %s (%s) since %s\n", h.Slot, h.Group, h.ID, h.Member, h.Since.UTC().Format(time.RFC3339))
			return nil
		}}
}
