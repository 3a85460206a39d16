package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
)

func recoverCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "recover (--from-member [--lost NAME]... | --from-snapshot latest|NAME|FILE|s3://BUCKET/KEY [--allow-partial]) [--replaces GENERATION]",
		Short: "rebuild the cluster on this node after a quorum loss",
		Long: "Rebuild the cluster on this node after its quorum was lost for good (e.g. 2 of 3 instances\n" +
			"terminated): a new cluster with a new cluster ID, from this member's data (--from-member:\n" +
			"every entry of its WAL) or from a snapshot (--from-snapshot), the revision bumped and old\n" +
			"revisions marked compacted. The running agent does the work; this command asks it and prints\n" +
			"its progress until the new cluster is healthy. The recovery is recorded in discovery: the\n" +
			"other nodes' agents move data of the lost cluster aside and join the new one as learners.\n" +
			"Refused while a quorum answers. --from-member reads how far every member's WAL reaches (each\n" +
			"node's agent answers on agent.apiPort whatever its etcd's state) and is refused when another\n" +
			"member holds newer entries (it names the node to run it on), when a member's agent does not\n" +
			"answer and is not declared gone with --lost NAME, or when this node holds no member data.\n" +
			"latest is the newest snapshot by recovery generation and revision (not by clock) in backup.dir\n" +
			"and S3; when a store does not answer it is refused naming it, unless --allow-partial.\n" +
			"Every refusal exits 3 and changes nothing; a failure (a file, an unreachable registry) exits 1.",
		Args:                  noArgs,
		DisableFlagsInUseLine: true,
	}
	fs := c.Flags()
	cf := addConfigFlags(fs)
	fromMember := fs.Bool("from-member", false, "rebuild from this node's member data")
	// The backquoted word is pflag's placeholder in the help: --from-snapshot REF.
	fromSnapshot := fs.String("from-snapshot", "", "rebuild from a snapshot `REF`: latest, a NAME that etcd-agent snapshot list shows, a FILE or s3://BUCKET/KEY")
	allowPartial := fs.Bool("allow-partial", false, "with --from-snapshot latest: choose among the snapshot stores that answer when another does not (it may hold a newer snapshot)")
	takeover := fs.Bool("takeover", false, "replace a recovery another node started and never finished (its node is gone)")
	force := fs.Bool("force", false, "with --from-member: recover from this member although another member holds newer entries")
	var lost []string
	fs.Func("lost", "with --from-member: a member of the lost cluster whose node is gone for good (repeat, or `NAME,NAME`): its agent need not answer", func(v string) error {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				lost = append(lost, name)
			}
		}
		return nil
	})
	replaces := fs.Int("replaces", 0, "the finished recovery `GENERATION` this one replaces, when the quorum check cannot look for that recovery's cluster (its record names no endpoints); the refusal names the generation")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to follow the recovery (the agent goes on after)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		o := recovery.Options{Takeover: *takeover, Force: *force, Lost: lost, Timeout: *timeout, AllowPartial: *allowPartial, Replaces: *replaces}
		if *replaces < 0 {
			return usageErrorf("--replaces %d: a recovery generation is 1 or more", *replaces)
		}
		if len(lost) > 0 && !*fromMember {
			return usageErrorf("--lost goes with --from-member (a snapshot needs no member's WAL)")
		}
		switch {
		case *allowPartial && *fromSnapshot != backup.Latest:
			return usageErrorf("--allow-partial goes with --from-snapshot latest only (a NAME, FILE or s3:// reference names one snapshot)")
		case *fromMember && *fromSnapshot != "":
			return usageErrorf("--from-member and --from-snapshot exclude each other: pick one")
		case *fromMember:
			o.From = recovery.FromMember
		case *fromSnapshot != "":
			o.From, o.Snapshot = recovery.FromSnapshot, *fromSnapshot
		default:
			return usageErrorf("say what to recover from: --from-member or --from-snapshot latest|NAME|FILE|s3://BUCKET/KEY")
		}
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		logger := newLogger(e, cfg.Agent.LogLevel, cfg.Agent.LogFormat)
		a, err := agent.New(agent.Options{Config: cfg, Identity: agent.NewIdentity(cfg, logger), Logger: logger, Version: version})
		if err != nil {
			return err
		}
		start := time.Now()
		n, err := a.RecoveryRequester(c.Context())
		if err != nil {
			return fmt.Errorf("read this node's identity: %w", err)
		}
		req, err := recovery.RequestRecovery(c.Context(), n, o, func(at time.Time, msg string) {
			fmt.Fprintf(e.stdout, "%s  %s\n", at.Local().Format("15:04:05.000"), msg)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "recovered: new cluster %s is healthy (%s after the request, %s in this command); the other nodes join it by themselves: watch `etcd-agent status`\n",
			req.ClusterID, req.Elapsed, time.Since(start).Round(time.Millisecond))
		return nil
	}
	return c
}
