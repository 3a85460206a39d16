package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

func configCommand(e env) *cobra.Command {
	return groupCommand("config", "check the agent configuration", "Check the agent configuration.", configCheckCommand(e))
}

func configCheckCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "check",
		Short: "validate a config without running anything (exit 78 on a problem)",
		Long: "Run every check `etcd-agent run` makes before it touches the network, like nginx -t:\n" +
			"the config file (strict YAML, every field), the etcd member the agent would run\n" +
			"(etcd.extraFlags and their values, the Raft tuning settings) and, unless --files=false,\n" +
			"this machine's files (CA key mode 0600, CA readable, data and certificate dirs writable).\n" +
			"All problems are listed at once, in file order, each with its YAML path and line, the\n" +
			"value and the fix (unknown keys with the nearest known one); exit 78 on\n" +
			"any, 0 and a summary otherwise. With node.identity imds the member is checked with a\n" +
			"placeholder IP, since the real one comes from IMDS at start.\n\n" +
			"Takes the same flags and environment overrides as run:\n" + envHelp(),
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	files := c.Flags().Bool("files", true, "also check this machine's CA files and data/cert dirs (false: a config for another machine)")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg, warnings, err := cf.check(e, config.CheckOptions{Files: *files})
		if err != nil {
			return err
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, newCheckSummary(cf.configPath(e), cfg, warnings, *files))
		}
		printCheckSummary(e.stdout, cf.configPath(e), cfg, warnings, *files)
		return nil
	}
	return c
}

// checkSummary is `config check -o json`: what the table shows, as fields.
type checkSummary struct {
	Config        string   `json:"config"`
	Cluster       string   `json:"cluster"`
	Size          int      `json:"size"`
	Discovery     string   `json:"discovery"`
	Identity      string   `json:"identity"`
	Member        string   `json:"member"`
	IP            string   `json:"ip"`
	PlaceholderIP bool     `json:"placeholder_ip"`
	Runtime       string   `json:"runtime"`
	Image         string   `json:"image,omitempty"`
	DataDir       string   `json:"data_dir"`
	EtcdFlags     int      `json:"etcd_flags"`
	ExtraFlags    int      `json:"extra_flags"`
	MetricsURL    string   `json:"metrics_url,omitempty"`
	FleetLockURL  string   `json:"fleet_lock_url,omitempty"`
	FilesChecked  bool     `json:"files_checked"`
	Warnings      []string `json:"warnings"`
}

func newCheckSummary(path string, cfg *config.Config, warnings []string, files bool) checkSummary {
	name, ip, placeholder := cfg.OfflineIdentity()
	s := checkSummary{Config: path, Cluster: cfg.Cluster.Name, Size: cfg.Cluster.Size, Discovery: discoveryKind(cfg.Cluster.Discovery),
		Identity: cfg.Node.Identity, Member: name, IP: ip.String(), PlaceholderIP: placeholder, Runtime: cfg.Etcd.Runtime,
		DataDir: cfg.Node.DataDir, EtcdFlags: len(cfg.MemberSpec(name, ip).Flags()), ExtraFlags: len(cfg.Etcd.ExtraFlags),
		FilesChecked: files, Warnings: append([]string{}, warnings...)}
	if cfg.Etcd.Runtime == "podman" {
		s.Image = cfg.Etcd.Image
	}
	if cfg.Metrics.Enabled {
		s.MetricsURL = "http://" + cfg.Metrics.Address + "/metrics"
	}
	if !cfg.FleetLock.Disabled {
		s.FleetLockURL = "http://" + cfg.FleetLock.Address + "/"
	}
	return s
}

// printCheckSummary is the short "configuration OK" report of `config check`.
func printCheckSummary(w io.Writer, path string, cfg *config.Config, warnings []string, files bool) {
	name, ip, placeholder := cfg.OfflineIdentity()
	spec := cfg.MemberSpec(name, ip)
	fmt.Fprintf(w, "configuration OK: %s\n", path)
	row := func(k, v string) { fmt.Fprintf(w, "  %-10s %s\n", k, v) }
	row("cluster", fmt.Sprintf("%s, %d voters", cfg.Cluster.Name, cfg.Cluster.Size))
	row("discovery", discoveryKind(cfg.Cluster.Discovery))
	id := fmt.Sprintf("static, member %s at %s", name, ip)
	if placeholder {
		id = fmt.Sprintf("imds (member checked with the placeholder IP %s; the real one comes from IMDS at start)", ip)
	}
	row("identity", id)
	rt := cfg.Etcd.Runtime
	if rt == "podman" {
		rt += ", image " + cfg.Etcd.Image
	}
	row("runtime", rt)
	row("data dir", cfg.Node.DataDir)
	row("etcd", fmt.Sprintf("%d member flags (%d extra)", len(spec.Flags()), len(cfg.Etcd.ExtraFlags)))
	if cfg.Metrics.Enabled {
		row("metrics", "http://"+cfg.Metrics.Address+"/metrics")
	}
	if cfg.FleetLock.Disabled {
		row("fleetlock", "off: Zincati on the fleet_lock strategy gets no reboot slot from this node")
	} else {
		row("fleetlock", "http://"+cfg.FleetLock.Address+"/ (Zincati's base_url)")
	}
	if !files {
		row("files", "not checked (--files=false)")
	}
	for _, wn := range warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
}

func discoveryKind(d config.Discovery) string {
	switch {
	case d.Static != "":
		return fmt.Sprintf("static, %d founding peers", len(strings.Split(d.Static, ",")))
	case d.URL != "":
		return "v2 discovery URL " + d.URL
	default:
		return fmt.Sprintf("v3 discovery, %d endpoint(s), token %s", len(d.Endpoints), d.Token)
	}
}
