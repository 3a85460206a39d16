package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

func fleetlockCommand(e env) *cobra.Command {
	return groupCommand("fleetlock", "coordinated OS reboots (Zincati's FleetLock slots)",
		"Coordinated OS reboots: the reboot slots Zincati takes through the agents' FleetLock endpoint.", fleetlockReleaseCommand(e))
}

// releasedSlot is `fleetlock release -o json`.
type releasedSlot struct {
	Slot   int       `json:"slot"`
	Group  string    `json:"group"`
	ID     string    `json:"id"`
	Member string    `json:"member"`
	Since  time.Time `json:"since"`
}

func fleetlockReleaseCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "release",
		Short: "free a reboot slot by hand (refused while its holder reboots, unless --force)",
		Long: "Free a reboot slot by hand (`etcd-agent status` shows who holds one, its group and since when).\n" +
			"Refused (exit 3) while its holder is still rebooting (its member in the cluster but not a healthy, caught-up\n" +
			"voter): freeing it then could let another node reboot while this one is down. --force frees it anyway,\n" +
			"for a node that is gone for good (the agents also free such a slot by themselves once its member was\n" +
			"removed or replaced, or has been down longer than cluster.deadMemberGrace).\n" +
			"Runs as the operator with the operator client certificate, like status.",
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	id := c.Flags().String("id", "", "the holder's Zincati ID (default: the only holder)")
	group := c.Flags().String("group", "", "the holder's group (default: any)")
	force := c.Flags().Bool("force", false, "free it even while its holder is rebooting")
	endpoints := c.Flags().String("endpoints", "", "client URLs to ask (default: from the agent report, else this node)")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
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
		h, err := fleetlock.ReleaseByHand(c.Context(), cli, *id, *group, *force)
		if err != nil {
			return err // report names the command
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, releasedSlot{Slot: h.Slot, Group: h.Group, ID: h.ID, Member: h.Member, Since: h.Since.UTC()})
		}
		fmt.Fprintf(e.stdout, "freed slot %d of group %s, held by %s (%s) since %s\n", h.Slot, h.Group, h.ID, h.Member, h.Since.UTC().Format(time.RFC3339))
		return nil
	}
	return c
}
