package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
)

// Source says where the configuration comes from besides the file. Values
// are applied in order: file, then Env, then Flags, then defaults for what is
// still zero.
type Source struct {
	// Path of the YAML file. A missing file is an error unless AllowMissing.
	Path         string
	AllowMissing bool
	// Env looks up environment variables (os.LookupEnv in main). Nil: none.
	Env func(string) (string, bool)
	// Flags holds command-line overrides keyed by the YAML path
	// ("node.ip"); see Overridable for the keys.
	Flags map[string]string
	// DefaultImageTag is the etcd version the binary was built with.
	DefaultImageTag string
	// UID is the agent's user id, for the rootless Podman socket default
	// when XDG_RUNTIME_DIR is unset.
	UID int
}

// Load reads, overrides, defaults and validates the configuration.
// Every failure is an *Error (exit with ExitCode).
func Load(src Source) (*Config, []string, error) {
	return loadChecked(src, nil)
}

// loadChecked is Load; extra adds the problems of further checks (valid says
// Validate passed), reported together with Validate's.
func loadChecked(src Source, extra func(c *Config, valid bool) []Problem) (*Config, []string, error) {
	cfg := &Config{}
	var lines Lines
	var ps []Problem
	data, err := os.ReadFile(src.Path)
	switch {
	case err == nil:
		lines, ps = DecodeYAML(data, cfg)
		if lines == nil { // a syntax error: nothing decoded to check
			return nil, nil, &Error{File: src.Path, Problems: ps}
		}
	case errors.Is(err, os.ErrNotExist) && src.AllowMissing:
	case errors.Is(err, os.ErrNotExist):
		return nil, nil, &Error{Problems: []Problem{{
			Field: "--config", Value: src.Path, Problem: "file does not exist",
			Fix: "create it (docs/configuration.md has a complete example) or pass --config PATH",
		}}}
	default:
		return nil, nil, &Error{Problems: []Problem{{
			Field: "--config", Value: src.Path, Problem: err.Error(),
			Fix: "make the file readable by the agent's user",
		}}}
	}
	from, err := applyOverrides(cfg, src)
	if err != nil {
		return nil, nil, err
	}
	env := src.Env
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	cfg.applyDefaults(src.DefaultImageTag, src.UID, env)
	warnings, err := cfg.Validate()
	var checked []Problem
	if err != nil {
		var cerr *Error
		if !errors.As(err, &cerr) {
			return nil, nil, err
		}
		checked = cerr.Problems
	}
	if extra != nil {
		checked = append(checked, extra(cfg, err == nil && len(ps) == 0)...)
	}
	// A value the file could not decode was left to its default: the
	// decode problem says what is wrong with it, not a check of the default.
	undecoded := map[string]bool{}
	for _, p := range ps {
		undecoded[p.Field] = true
	}
	for _, p := range checked {
		if undecoded[p.Field] {
			continue
		}
		if p.Line == 0 && p.From == "" {
			if f, ok := from[p.Field]; ok {
				p.From = f
			} else {
				p.Line = lines[p.Field]
			}
		}
		ps = append(ps, p)
	}
	if len(ps) > 0 {
		return nil, nil, &Error{File: src.Path, Problems: inFileOrder(ps)}
	}
	return cfg, warnings, nil
}

// inFileOrder sorts problems by the line they are on; those not on a line
// of the file (defaults, overrides, the etcd member) follow in check order.
func inFileOrder(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		return li != 0 && (lj == 0 || li < lj)
	})
	return ps
}

// override binds one key to the env variable and the setter it feeds.
type override struct {
	key string
	env string
	set func(*Config, string) error
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

// overrides are the settings operators expect to change without editing
// the file: paths, addresses and sockets that differ per host or per test.
var overrides = []override{
	{"node.identity", "ETCD_AGENT_IDENTITY", str(func(c *Config) *string { return &c.Node.Identity })},
	{"node.ip", "ETCD_AGENT_NODE_IP", str(func(c *Config) *string { return &c.Node.IP })},
	{"node.name", "ETCD_AGENT_NODE_NAME", str(func(c *Config) *string { return &c.Node.Name })},
	{"node.imdsEndpoint", "ETCD_AGENT_IMDS_ENDPOINT", str(func(c *Config) *string { return &c.Node.IMDSEndpoint })},
	{"node.dataDir", "ETCD_AGENT_DATA_DIR", str(func(c *Config) *string { return &c.Node.DataDir })},
	{"pki.dir", "ETCD_AGENT_PKI_DIR", str(func(c *Config) *string { return &c.PKI.Dir })},
	{"etcd.runtime", "ETCD_AGENT_RUNTIME", str(func(c *Config) *string { return &c.Etcd.Runtime })},
	{"etcd.image", "ETCD_AGENT_IMAGE", str(func(c *Config) *string { return &c.Etcd.Image })},
	{"podman.socket", "ETCD_AGENT_PODMAN_SOCKET", str(func(c *Config) *string { return &c.Podman.Socket })},
	{"agent.statusFile", "ETCD_AGENT_STATUS_FILE", str(func(c *Config) *string { return &c.Agent.StatusFile })},
	{"agent.logLevel", "ETCD_AGENT_LOG_LEVEL", str(func(c *Config) *string { return &c.Agent.LogLevel })},
	{"agent.logFormat", "ETCD_AGENT_LOG_FORMAT", str(func(c *Config) *string { return &c.Agent.LogFormat })},
	{"cluster.discovery.token", "ETCD_AGENT_DISCOVERY_TOKEN", str(func(c *Config) *string { return &c.Cluster.Discovery.Token })},
}

// Overridable lists the keys accepted in Source.Flags and their env
// variables, for help text.
func Overridable() [][2]string {
	out := make([][2]string, len(overrides))
	for i, o := range overrides {
		out[i] = [2]string{o.key, o.env}
	}
	return out
}

// applyOverrides sets the env and flag overrides and returns, for each key
// it set, where the value came from.
func applyOverrides(cfg *Config, src Source) (map[string]string, error) {
	from := map[string]string{}
	known := map[string]bool{}
	for _, o := range overrides {
		known[o.key] = true
		if src.Env != nil {
			if v, ok := src.Env(o.env); ok && v != "" {
				if err := o.set(cfg, v); err != nil {
					return nil, err
				}
				from[o.key] = o.env
			}
		}
	}
	keys := make([]string, 0, len(src.Flags))
	for k := range src.Flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			return nil, fmt.Errorf("config: internal error: flag override %q has no setter", k)
		}
		for _, o := range overrides {
			if o.key == k {
				if err := o.set(cfg, src.Flags[k]); err != nil {
					return nil, err
				}
				from[k] = "the command line"
			}
		}
	}
	return from, nil
}
