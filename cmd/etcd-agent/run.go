package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/systemd"
)

func runCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "run",
		Short: "run the node agent (the systemd service)",
		Long: "Run this node's agent: identity, certificates, discovery or join, etcd, readiness\n" +
			"(sd_notify READY=1 only when the local member is a healthy, caught-up voter), supervision.\n" +
			"Runs until SIGTERM. Configuration errors exit with code 78 (systemd does not restart on it).\n\n" +
			"Environment overrides (below flags, above the file):\n" + envHelp(),
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		// Every offline check (`config check`) before anything touches
		// the network: a config mistake exits 78 with no discovery slot
		// taken and no IMDS call made.
		cfg, warnings, err := cf.check(e, config.CheckOptions{Files: true})
		if err != nil {
			return err
		}
		logger := newLogger(e, cfg.Agent.LogLevel, cfg.Agent.LogFormat)
		for _, w := range warnings {
			logger.Warn("configuration", "warning", w)
		}
		return runAgent(c.Context(), e, cfg, logger)
	}
	return c
}

func runAgent(ctx context.Context, e env, cfg *config.Config, logger *slog.Logger) error {
	notifySocket, _ := e.lookupEnv("NOTIFY_SOCKET")
	wdUSec, _ := e.lookupEnv("WATCHDOG_USEC")
	wdPID, _ := e.lookupEnv("WATCHDOG_PID")
	rt, err := agent.NewRuntime(cfg, logger)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Options{
		Config:           cfg,
		Identity:         agent.NewIdentity(cfg, logger),
		Runtime:          rt,
		Notifier:         systemd.NewNotifier(notifySocket, logger),
		Logger:           logger,
		Version:          version,
		WatchdogInterval: systemd.WatchdogInterval(wdUSec, wdPID, os.Getpid()),
	})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// configFlags are the flags every config-reading command shares.
type configFlags struct {
	path      *string
	overrides map[string]*string
}

var configFlagNames = []struct{ flag, key, help string }{
	{"node-ip", "node.ip", "this node's private IP (implies nothing about node.identity)"},
	{"node-name", "node.name", "etcd member name (default: derived from the IP)"},
	{"data-dir", "node.dataDir", "etcd data directory"},
	{"pki-dir", "pki.dir", "directory of the issued certificates"},
	{"runtime", "etcd.runtime", "podman or embedded"},
	{"podman-socket", "podman.socket", "Podman API socket URI"},
	{"status-file", "agent.statusFile", "where the agent publishes its state"},
	{"log-level", "agent.logLevel", "debug, info, warn or error"},
}

func addConfigFlags(fs *pflag.FlagSet) *configFlags {
	cf := &configFlags{overrides: map[string]*string{}}
	cf.path = fs.String("config", config.DefaultPath, "configuration file (env ETCD_AGENT_CONFIG)")
	for _, f := range configFlagNames {
		cf.overrides[f.key] = fs.String(f.flag, "", f.help)
	}
	return cf
}

// load reads and validates the configuration (config.Load).
func (cf *configFlags) load(e env) (*config.Config, []string, error) {
	return config.Load(cf.source(e))
}

// check is load plus every other offline check (config.Check), all
// problems reported together.
func (cf *configFlags) check(e env, opts config.CheckOptions) (*config.Config, []string, error) {
	return config.Check(cf.source(e), opts)
}

func (cf *configFlags) source(e env) config.Source {
	return config.Source{Path: cf.configPath(e), Env: e.lookupEnv, Flags: cf.flagValues(), DefaultImageTag: defaultEtcdVersion, UID: os.Getuid()}
}

func (cf *configFlags) configPath(e env) string {
	path := *cf.path
	if v, ok := e.lookupEnv("ETCD_AGENT_CONFIG"); ok && v != "" && path == config.DefaultPath {
		path = v
	}
	return path
}

func (cf *configFlags) flagValues() map[string]string {
	flags := map[string]string{}
	for k, v := range cf.overrides {
		if *v != "" {
			flags[k] = *v
		}
	}
	return flags
}

func envHelp() string {
	s := ""
	for _, o := range config.Overridable() {
		s += fmt.Sprintf("  %-28s %s\n", o[1], o[0])
	}
	return s
}

// newLogger logs to stderr (the journal under systemd) at level, as text
// or, with format json, one JSON object per line.
func newLogger(e env, level, format string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}
