package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/schedule"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

func snapshotCommand(e env) *cobra.Command {
	return groupCommand("snapshot", "take, list and verify snapshots (backups) of the cluster",
		"Take, list and verify snapshots (backups) of the cluster.",
		snapshotSaveCommand(e), snapshotListCommand(e), snapshotVerifyCommand(e))
}

// savedSnapshot is `snapshot save -o json`.
type savedSnapshot struct {
	Name      string   `json:"name"`
	ClusterID string   `json:"cluster_id"`
	Revision  int64    `json:"revision"`
	Keys      int64    `json:"keys"`
	Size      int64    `json:"size"`
	SHA256    string   `json:"sha256"`
	Where     []string `json:"where"`
}

func snapshotSaveCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "save",
		Short: "take a snapshot now and store it",
		Long: "Take a snapshot now: stream this node's member's database (or --endpoint's), hash it, write its\n" +
			"metadata (revision, key count and HashKV at that revision, members, versions, sha256) beside it,\n" +
			"store both in backup.dir and, when backup.s3.bucket is set, in S3 (checksum checked after upload).\n" +
			"Uses the operator certificate; the snapshot is recorded where `status` shows it.",
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	endpoint := c.Flags().String("endpoint", "", "client URL of the member to snapshot (default: this node's)")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		ep := *endpoint
		if ep == "" {
			ep = localClientURL(cfg)
		}
		cli, err := operatorClient(cfg, ep)
		if err != nil {
			return err
		}
		defer cli.Close()
		src, err := backup.OpenSources(ctx, cfg)
		if err != nil {
			return err
		}
		m, where, err := backup.Take(ctx, backup.SaveOptions{
			Client: cli, Dir: cfg.Backup.Dir, Cluster: cfg.Cluster.Name, TakenBy: takenBy(cfg), Reason: "manual",
		}, src.Stores)
		rerr := schedule.Update(ctx, cli, func(r *agentreport.Backup) {
			if len(where) > 0 {
				r.Last = &agentreport.Snapshot{Name: m.Name, Revision: m.Revision, Time: m.Time, TakenBy: m.TakenBy, Reason: "manual", Where: where, Size: m.Size}
			}
			if err != nil {
				r.Failure = &agentreport.Failure{At: time.Now().UTC(), By: m.TakenBy, Error: err.Error()}
			} else {
				r.Failure = nil
			}
		})
		if len(where) > 0 {
			if *out != formatTable {
				if perr := printDoc(e.stdout, *out, savedSnapshot{Name: m.Name, ClusterID: hexID(m.ClusterID), Revision: m.Revision,
					Keys: m.KeyCount, Size: m.Size, SHA256: m.SHA256, Where: where}); perr != nil && err == nil {
					err = perr
				}
			} else {
				fmt.Fprintf(e.stdout, "snapshot %s\n  revision %d, %d keys, %d bytes, sha256 %s\n  stored in %s\n",
					m.Name, m.Revision, m.KeyCount, m.Size, m.SHA256, strings.Join(where, ", "))
			}
		}
		if err != nil {
			return err
		}
		if rerr != nil {
			fmt.Fprintf(e.stderr, "warning: snapshot not recorded for `status`: %v\n", rerr)
		}
		return nil
	}
	return c
}

// hexID spells an etcd ID as etcdctl prints it (lowercase hex, no zero
// padding); the snapshot metadata stores it zero-padded to 16 digits.
func hexID(s string) string {
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return s
	}
	return strconv.FormatUint(id, 16)
}

// snapshotRow is one snapshot as `snapshot list` shows it.
type snapshotRow struct {
	Name      string    `json:"name"`
	ClusterID string    `json:"cluster_id,omitempty"`
	Revision  int64     `json:"revision"`
	Keys      int64     `json:"keys"`
	Size      int64     `json:"size"`
	Time      time.Time `json:"time"`
	TakenBy   string    `json:"taken_by"`
	Reason    string    `json:"reason"`
	Where     string    `json:"where"`
	Error     string    `json:"error,omitempty"`
}

func snapshotListCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "list snapshots in every store",
		Long: "List the complete snapshots (those with their metadata) in backup.dir and in S3, oldest first.\n" +
			"Without S3, another node's snapshots are on its own disk: the list says where the cluster's\n" +
			"newest one is (from the snapshot record the agents share, as this node's agent last read it).",
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		src, err := backup.OpenSources(ctx, cfg)
		if err != nil {
			return err
		}
		rows := []snapshotRow{}
		var failed []string
		for _, st := range src.Stores {
			names, err := backup.List(ctx, st)
			if err != nil {
				failed = append(failed, err.Error())
				continue
			}
			for _, name := range names {
				row := snapshotRow{Name: name, Where: st.Where()}
				if b, err := st.Get(ctx, name+backup.MetaSuffix); err != nil {
					row.Error = err.Error()
				} else if m, err := backup.ParseMeta(b, name); err != nil {
					row.Error = err.Error()
				} else {
					row.Revision, row.Keys, row.Size, row.Time, row.TakenBy, row.Reason = m.Revision, m.KeyCount, m.Size, m.Time, m.TakenBy, m.Reason
					row.ClusterID = hexID(m.ClusterID)
				}
				rows = append(rows, row)
			}
		}
		elsewhere := newestElsewhere(cfg, rows)
		if *out != formatTable {
			if err := printDoc(e.stdout, *out, rows); err != nil {
				return err
			}
			if elsewhere != "" {
				fmt.Fprintln(e.stderr, elsewhere)
			}
		} else {
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREVISION\tKEYS\tSIZE\tTAKEN BY\tREASON\tWHERE")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Name, r.Revision, r.Keys, r.Size, r.TakenBy, r.Reason, r.Where)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if elsewhere != "" {
				fmt.Fprintln(e.stdout, "\n"+elsewhere)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("%s", strings.Join(failed, "; "))
		}
		return nil
	}
	return c
}

// verifiedSnapshot is `snapshot verify -o json`.
type verifiedSnapshot struct {
	Name         string  `json:"name"`
	Revision     int64   `json:"revision"`
	Keys         int64   `json:"keys"`
	HashKV       string  `json:"hash_kv"`
	HashCompared bool    `json:"hash_compared"`
	Seconds      float64 `json:"seconds"`
}

func snapshotVerifyCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "verify [NAME|latest|FILE|s3://bucket/key]",
		Short: "restore a snapshot into a throw-away member and check it",
		Long: "Prove a snapshot restorable: fetch it (default: latest, the newest in backup.dir or S3), check\n" +
			"its size and sha256 against its metadata, restore it into a throw-away etcd member (loopback, a\n" +
			"temporary dir under backup.dir, removed afterwards) and compare its revision, key count and HashKV\n" +
			"with what the source member reported when the snapshot was taken. Exit 1 when it does not hold.",
		Args: maxArgs(1),
	}
	cf := addConfigFlags(c.Flags())
	allowPartial := c.Flags().Bool("allow-partial", false, "latest: choose among the snapshot stores that answer when another does not")
	host := c.Flags().String("host", "", "loopback address for the throw-away member (default: the node's own if loopback, else 127.0.0.1)")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		ref := backup.Latest
		if len(args) == 1 {
			ref = args[0]
		}
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		src, err := backup.OpenSources(ctx, cfg)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(cfg.Backup.Dir, 0o700); err != nil {
			return fmt.Errorf("backup.dir: %w", err)
		}
		tmp, err := os.MkdirTemp(cfg.Backup.Dir, ".tmp-verify-")
		if err != nil {
			return fmt.Errorf("backup.dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		file := filepath.Join(tmp, "snapshot.db")
		src.AllowPartial = *allowPartial
		m, err := backup.Fetch(ctx, src, ref, file)
		if err != nil {
			return err
		}
		h := *host
		if h == "" {
			h = "127.0.0.1"
			if ip, err := netip.ParseAddr(cfg.Node.IP); err == nil && ip.IsLoopback() {
				h = ip.String()
			}
		}
		v, err := backup.Verify(ctx, file, m, backup.VerifyOptions{Host: h, TempDir: tmp})
		if err != nil {
			return err
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, verifiedSnapshot{Name: m.Name, Revision: v.Revision, Keys: v.KeyCount,
				HashKV: fmt.Sprintf("%08x", v.HashKV), HashCompared: v.HashCompared, Seconds: v.Took.Seconds()})
		}
		hash := "HashKV equal"
		if !v.HashCompared {
			hash = "HashKV not compared (no metadata, or compacted differently)"
		}
		fmt.Fprintf(e.stdout, "snapshot %s verified in %s: revision %d, %d keys, %s (%08x)\n",
			m.Name, v.Took.Round(time.Millisecond), v.Revision, v.KeyCount, hash, v.HashKV)
		return nil
	}
	return c
}

// operatorClient reaches one member with the operator certificate.
func operatorClient(cfg *config.Config, endpoint string) (*clientv3.Client, error) {
	tlsCfg, err := pki.ClientTLS(cfg.PKI.Dir, pki.OperatorCertFile, pki.OperatorKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load the operator certificate from pki.dir %s (has the agent run on this node?): %w", cfg.PKI.Dir, err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	return cli, nil
}

// takenBy names this node in snapshot metadata: its member name (from the
// config, the agent's report, or a static IP), else its host name.
func takenBy(cfg *config.Config) string {
	if cfg.Node.Name != "" {
		return cfg.Node.Name
	}
	if rep, err := agentreport.Read(cfg.Agent.StatusFile); err == nil && rep.Name != "" {
		return rep.Name
	}
	if ip, err := netip.ParseAddr(cfg.Node.IP); err == nil {
		return identity.MemberName(ip)
	}
	h, _ := os.Hostname()
	return h
}

// newestElsewhere says where the cluster's newest snapshot is when none of
// the stores listed here holds it (it sits on the taking node's disk), from
// this node's agent report; "" when listed, or unknown.
func newestElsewhere(cfg *config.Config, rows []snapshotRow) string {
	rep, err := agentreport.Read(cfg.Agent.StatusFile)
	if err != nil || rep.Backup == nil || rep.Backup.Last == nil {
		return ""
	}
	l := rep.Backup.Last
	for _, r := range rows {
		if r.Name == l.Name {
			return ""
		}
	}
	return fmt.Sprintf("the cluster's newest snapshot %s (revision %d, %s) is not in these stores: %s took it and keeps it in %s; run `etcd-agent snapshot list` there, or configure backup.s3 so every node sees every snapshot",
		l.Name, l.Revision, l.Time.UTC().Format(time.RFC3339), l.TakenBy, strings.Join(l.Where, ", "))
}
