package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
)

func (c *Config) applyDefaults(imageTag string, uid int, env func(string) (string, bool)) {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setDur := func(p *Duration, v time.Duration) {
		if *p == 0 {
			*p = Duration(v)
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setStr(&c.Cluster.Name, DefaultClusterName)
	setInt(&c.Cluster.Size, DefaultClusterSize)
	setDur(&c.Cluster.DeadMemberGrace, DefaultDeadMemberGrace)
	setStr(&c.Node.Identity, "imds")
	setStr(&c.Node.DataDir, DefaultDataDir)
	setStr(&c.PKI.CACert, DefaultCACert)
	setStr(&c.PKI.CAKey, DefaultCAKey)
	setStr(&c.PKI.Dir, DefaultPKIDir)
	setDur(&c.PKI.Validity, DefaultValidity)
	setDur(&c.PKI.RenewBefore, DefaultRenewBefore)
	setStr(&c.Etcd.Runtime, "podman")
	if imageTag == "" {
		imageTag = "latest"
	}
	setStr(&c.Etcd.Image, DefaultImageRepo+":"+imageTag)
	setInt(&c.Etcd.ClientPort, DefaultClientPort)
	setInt(&c.Etcd.PeerPort, DefaultPeerPort)
	if c.Etcd.QuotaBackendBytes == 0 {
		c.Etcd.QuotaBackendBytes = DefaultQuota
	}
	setDur(&c.Etcd.AutoCompactionRetention, DefaultCompaction)
	if c.Podman.Socket == "" {
		// The agent user's rootless socket. systemd's %U is the manager's
		// uid, not User='s, so the unit may not set XDG_RUNTIME_DIR.
		dir, ok := env("XDG_RUNTIME_DIR")
		if !ok || dir == "" {
			dir = fmt.Sprintf("/run/user/%d", uid)
		}
		c.Podman.Socket = "unix://" + filepath.Join(dir, "podman", "podman.sock")
	}
	setStr(&c.Podman.ContainerName, DefaultContainerName)
	setDur(&c.Podman.StopTimeout, DefaultStopTimeout)
	setStr(&c.Agent.StatusFile, DefaultStatusFile)
	setStr(&c.Agent.LogLevel, "info")
	setStr(&c.Agent.LogFormat, "text")
	setDur(&c.Agent.HealthInterval, DefaultHealthInterval)
	setInt(&c.Agent.APIPort, DefaultAgentAPIPort)
	c.Maintenance.applyDefaults()
	c.Metrics.applyDefaults()
	c.FleetLock.applyDefaults()
	c.applyBackupDefaults()
	c.applyClientDefaults()
	c.applyFleetDefaults()
}

// memberName is what etcd accepts in --name and in initial-cluster strings.
var memberName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks a defaulted configuration. It returns warnings for
// settings that work but are probably unintended.
func (c *Config) Validate() (warnings []string, err error) {
	var ps []Problem
	bad := func(field, value, problem, fix string) {
		ps = append(ps, Problem{Field: field, Value: value, Problem: problem, Fix: fix})
	}

	switch n := c.Cluster.Size; {
	case n < 1:
		bad("cluster.size", fmt.Sprint(n), "must be at least 1", "use 3 or 5 voting members")
	case n > 9:
		bad("cluster.size", fmt.Sprint(n), "more than 9 voters makes every write slower and gains nothing", "use 3, 5 or 7")
	case n%2 == 0:
		warnings = append(warnings, fmt.Sprintf("cluster.size = %d is even: it tolerates no more failures than %d and needs a larger quorum", n, n-1))
	}
	switch g := c.Cluster.DeadMemberGrace.D(); {
	case g < MinDeadMemberGrace:
		bad("cluster.deadMemberGrace", g.String(), fmt.Sprintf("must be at least %s: a member is removed only after the removing node itself saw it fail probes for this long, over several probe rounds", MinDeadMemberGrace),
			"use several minutes in production (longer than a reboot), e.g. 10m")
	case g < time.Minute:
		warnings = append(warnings, fmt.Sprintf("cluster.deadMemberGrace = %s is shorter than a reboot: a rebooting node may be replaced while it is away", g))
	}
	if !memberName.MatchString(c.Cluster.Name) {
		bad("cluster.name", c.Cluster.Name, "must be letters, digits, '.', '_' or '-'", "pick a short name like \"prod-etcd\"")
	}
	c.validateDiscovery(bad)

	switch c.Node.Identity {
	case "imds":
		if c.Node.IMDSEndpoint != "" {
			checkURL("node.imdsEndpoint", c.Node.IMDSEndpoint, bad)
		}
	case "static":
		if c.Node.IP == "" {
			bad("node.ip", "", "is required when node.identity is \"static\"", "set node.ip to this host's private address")
		}
	default:
		bad("node.identity", c.Node.Identity, "must be \"imds\" or \"static\"", "use imds on EC2, static elsewhere")
	}
	if c.Node.IP != "" {
		if _, err := netip.ParseAddr(c.Node.IP); err != nil {
			bad("node.ip", c.Node.IP, "is not an IP address", "write it like 10.0.1.5")
		}
	}
	if c.Node.Name != "" && !memberName.MatchString(c.Node.Name) {
		bad("node.name", c.Node.Name, "must be letters, digits, '.', '_' or '-' (at most 63)", "leave it empty to derive it from the IP")
	}
	for _, f := range [][2]string{
		{"node.dataDir", c.Node.DataDir}, {"pki.dir", c.PKI.Dir}, {"pki.caCert", c.PKI.CACert},
		{"pki.caKey", c.PKI.CAKey}, {"agent.statusFile", c.Agent.StatusFile},
	} {
		if !filepath.IsAbs(f[1]) {
			bad(f[0], f[1], "must be an absolute path", "start it with /")
		}
	}

	switch v := c.PKI.Validity.D(); {
	case v < MinValidity:
		bad("pki.validity", c.PKI.Validity.String(), "is shorter than "+MinValidity.String()+": certificates would expire between renewal checks", "use something like 365d")
	case v < time.Hour:
		warnings = append(warnings, fmt.Sprintf("pki.validity = %s renews certificates every few minutes: fine for a test, not for production (use something like 365d)", c.PKI.Validity))
	}
	if c.PKI.RenewBefore >= c.PKI.Validity {
		bad("pki.renewBefore", c.PKI.RenewBefore.String(), "must be shorter than pki.validity ("+c.PKI.Validity.String()+"), or every start reissues", "use about a tenth of the validity, e.g. 30d for 365d")
	}

	switch c.Etcd.Runtime {
	case "podman":
		if !strings.HasPrefix(c.Podman.Socket, "unix://") && !strings.HasPrefix(c.Podman.Socket, "/") {
			bad("podman.socket", c.Podman.Socket, "must be a unix:// URI or an absolute socket path", "e.g. unix:///run/user/1000/podman/podman.sock")
		}
		if c.Etcd.Image == "" {
			bad("etcd.image", "", "is empty", "leave it unset for the default image")
		}
	case "embedded":
	default:
		bad("etcd.runtime", c.Etcd.Runtime, "must be \"podman\" or \"embedded\"", "use podman in production, embedded for local mode")
	}
	for _, p := range []struct {
		field string
		port  int
	}{{"etcd.clientPort", c.Etcd.ClientPort}, {"etcd.peerPort", c.Etcd.PeerPort}, {"agent.apiPort", c.Agent.APIPort}} {
		if p.port < 1 || p.port > 65535 {
			bad(p.field, fmt.Sprint(p.port), "is not a TCP port", "use 1-65535 (defaults: etcd 2379/2380, agent API 2383)")
		}
	}
	if c.Agent.APIPort == c.Etcd.ClientPort || c.Agent.APIPort == c.Etcd.PeerPort {
		bad("agent.apiPort", fmt.Sprint(c.Agent.APIPort), fmt.Sprintf("uses etcd's client or peer port (%d/%d)", c.Etcd.ClientPort, c.Etcd.PeerPort), "pick another port (default 2383)")
	}
	if c.Etcd.ClientPort == c.Etcd.PeerPort {
		bad("etcd.peerPort", fmt.Sprint(c.Etcd.PeerPort), "equals etcd.clientPort", "use different ports (defaults 2379/2380)")
	}
	switch q := c.Etcd.QuotaBackendBytes; {
	case q < 64<<20:
		bad("etcd.quotaBackendBytes", fmt.Sprint(int64(q)), "is below 64MiB", "use 2GiB-8GiB")
	case q > 8<<30:
		warnings = append(warnings, "etcd.quotaBackendBytes is above 8GiB, the largest size etcd recommends")
	}
	c.validateTuning(bad)
	for i, f := range c.Etcd.ExtraFlags {
		switch {
		case etcdconf.StrictReconfigOff(f):
			// CheckOffline refuses it, whatever its dashes.
		case !strings.HasPrefix(f, "--"):
			bad(fmt.Sprintf("etcd.extraFlags[%d]", i), f, "must look like --flag=value", "prefix the flag with --")
		}
	}
	if c.Podman.ContainerName == "" || !memberName.MatchString(c.Podman.ContainerName) {
		bad("podman.containerName", c.Podman.ContainerName, "is not a valid container name", "use letters, digits, '.', '_' or '-'")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Agent.LogLevel)); err != nil {
		bad("agent.logLevel", c.Agent.LogLevel, "is not a log level", "use debug, info, warn or error")
	}
	if c.Agent.LogFormat != "text" && c.Agent.LogFormat != "json" {
		bad("agent.logFormat", c.Agent.LogFormat, "is not a log format", "use text or json")
	}
	if c.Agent.HealthInterval.D() < 100*time.Millisecond {
		bad("agent.healthInterval", c.Agent.HealthInterval.String(), "is too short", "use 1s or more (default 5s)")
	}
	c.Maintenance.validate(bad)
	warnings = append(warnings, c.validateMetrics(bad)...)
	c.validateFleetLock(bad)
	c.validateBackup(bad, func(w string) { warnings = append(warnings, w) })
	c.validateClients(bad)
	c.validateFleet(bad)
	if len(ps) > 0 {
		return warnings, &Error{Problems: ps}
	}
	return warnings, nil
}

func (c *Config) validateDiscovery(bad func(field, value, problem, fix string)) {
	d := c.Cluster.Discovery
	sources := 0
	if len(d.Endpoints) > 0 || d.Token != "" {
		sources++
		if len(d.Endpoints) == 0 {
			bad("cluster.discovery.endpoints", "", "is empty but cluster.discovery.token is set", "list the discovery cluster's client URLs")
		}
		if d.Token == "" {
			bad("cluster.discovery.token", "", "is empty but cluster.discovery.endpoints is set", "create one with `etcd-agent discovery new --size N`")
		}
		for i, e := range d.Endpoints {
			checkURL(fmt.Sprintf("cluster.discovery.endpoints[%d]", i), e, bad)
		}
	}
	if d.URL != "" {
		sources++
		if checkURL("cluster.discovery.url", d.URL, bad) {
			if u, _ := url.Parse(d.URL); strings.Trim(u.Path, "/") == "" {
				bad("cluster.discovery.url", d.URL, "has no token in its path", "use the full URL, e.g. https://discovery.etcd.io/<token>")
			}
		}
	}
	if d.Static != "" {
		sources++
		for i, m := range strings.Split(d.Static, ",") {
			name, peer, ok := strings.Cut(strings.TrimSpace(m), "=")
			if !ok || !memberName.MatchString(name) {
				bad("cluster.discovery.static", m, fmt.Sprintf("entry %d is not name=https://ip:port", i+1), "write it like etcd-10-0-1-5=https://10.0.1.5:2380,...")
				continue
			}
			checkURL("cluster.discovery.static", peer, bad)
		}
	}
	switch sources {
	case 0:
		bad("cluster.discovery", "", "no discovery source is set", "set endpoints+token (v3 discovery), url (v2 discovery) or static")
	case 1:
	default:
		bad("cluster.discovery", "", "more than one discovery source is set", "keep exactly one of endpoints+token, url, static")
	}
	if (d.Cert == "") != (d.Key == "") {
		bad("cluster.discovery.cert", d.Cert, "cert and key must be set together", "set both cluster.discovery.cert and cluster.discovery.key, or neither")
	}
}

func checkURL(field, raw string, bad func(field, value, problem, fix string)) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(field, raw, "is not an http(s) URL", "write it like https://10.0.1.5:2379")
		return false
	}
	return true
}

// etcd's own Raft timing defaults and limits (server/embed/config.go).
const (
	EtcdDefaultHeartbeat = 100 * time.Millisecond
	EtcdDefaultElection  = time.Second
	EtcdMaxElection      = 50 * time.Second
)

// validateTuning applies etcd's own rules to the Raft settings, so that a
// value etcd would refuse at start is a config error before anything runs.
func (c *Config) validateTuning(bad func(field, value, problem, fix string)) {
	if n := c.Etcd.SnapshotCount; n < 0 {
		bad("etcd.snapshotCount", fmt.Sprint(n), "must be positive", "leave it unset for etcd's default (10000) or use e.g. 50000")
	}
	hb, el := c.Etcd.HeartbeatInterval.D(), c.Etcd.ElectionTimeout.D()
	for _, f := range []struct {
		field string
		d     time.Duration
	}{{"etcd.heartbeatInterval", hb}, {"etcd.electionTimeout", el}} {
		if f.d != 0 && f.d%time.Millisecond != 0 {
			bad(f.field, f.d.String(), "etcd takes whole milliseconds", "round it to milliseconds, e.g. "+f.d.Round(time.Millisecond).String())
		}
	}
	if hb != 0 && hb < time.Millisecond {
		bad("etcd.heartbeatInterval", hb.String(), "must be at least 1ms", "leave it unset for etcd's default (100ms); use about the round-trip time between members")
	}
	if el > EtcdMaxElection {
		bad("etcd.electionTimeout", el.String(), "is too long: etcd refuses more than 50s", "leave it unset for etcd's default (1s) or use 10 times the heartbeat interval")
	}
	if hb == 0 {
		hb = EtcdDefaultHeartbeat
	}
	if el == 0 {
		el = EtcdDefaultElection
	}
	if hb >= time.Millisecond && el < 5*hb {
		what := "etcd.electionTimeout"
		if c.Etcd.ElectionTimeout == 0 {
			what += " (etcd's default 1s)"
		}
		bad("etcd.electionTimeout", el.String(), fmt.Sprintf("%s should be at least as 5 times as etcd.heartbeatInterval (%s), etcd's own rule", what, hb),
			fmt.Sprintf("set etcd.electionTimeout to %s (10 times the heartbeat) or more", 10*hb))
	}
}
