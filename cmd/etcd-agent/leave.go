package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
)

func leaveCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "leave",
		Short: "remove this node from the cluster and wipe its data",
		Long: "Remove this node's member from the cluster (scale-down, decommission), then stop its etcd\n" +
			"and wipe its data dir, only after the removal is committed. Refused (exit 3, nothing changed)\n" +
			"when the remaining voters would lose quorum, or when this is the last voter. The node then stays\n" +
			"out: the agent will not start etcd or join again until the leave marker (<data dir>.left) is deleted.\n" +
			"Safe to run again after an interruption: it finishes what is left.",
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		logger := newLogger(e, cfg.Agent.LogLevel, cfg.Agent.LogFormat)
		// A container is stopped through Podman; embedded etcd lives in
		// the running agent's process and stops itself once removed.
		var rt runtime.Runtime
		if cfg.Etcd.Runtime == "podman" {
			if rt, err = agent.NewRuntime(cfg, logger); err != nil {
				return err
			}
		}
		a, err := agent.New(agent.Options{Config: cfg, Identity: agent.NewIdentity(cfg, logger), Runtime: rt, Logger: logger, Version: version})
		if err != nil {
			return err
		}
		if err := a.Leave(c.Context(), func(msg string) { fmt.Fprintln(e.stdout, msg) }); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "this node has left the cluster")
		return nil
	}
	return c
}
