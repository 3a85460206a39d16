package main

import (
	"context"
	"fmt"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
)

func leaveCommand() *command {
	const usage = "etcd-agent leave [--config PATH]"
	const summary = "Remove this node's member from the cluster (scale-down, decommission), then stop its etcd\n" +
		"and wipe its data dir, only after the removal is committed. Refused when the remaining voters\n" +
		"would lose quorum, or when this is the last voter. The node then stays out: the agent will not\n" +
		"start etcd or join again until the leave marker (<data dir>.left) is deleted.\n" +
		"Safe to run again after an interruption: it finishes what is left."
	return &command{name: "leave", usage: usage, summary: "remove this node from the cluster and wipe its data",
		run: func(ctx context.Context, e env, args []string) error {
			fs := newFlagSet(e, "leave", usage, summary)
			cf := addConfigFlags(fs)
			if err := parseFlags(fs, args, 0); err != nil {
				return err
			}
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
			if err := a.Leave(ctx, func(msg string) { fmt.Fprintln(e.stdout, msg) }); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "this node has left the cluster")
			return nil
		}}
}
