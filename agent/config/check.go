package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/identity"
)

// PlaceholderIP stands in for the node's private IP when it is only known
// from IMDS at start: the member spec is checked with it offline.
var PlaceholderIP = netip.MustParseAddr("192.0.2.10")

// MemberSpec is the etcd member configuration the agent runs for this
// config, for the member name and private IP of the node's identity, before
// any membership decision (no initial-cluster settings). The agent and
// CheckOffline build the spec only through it.
func (c *Config) MemberSpec(name string, ip netip.Addr) etcdconf.Spec {
	return etcdconf.Spec{
		Name:                    name,
		DataDir:                 c.Node.DataDir,
		NodeIP:                  ip,
		ClientPort:              c.Etcd.ClientPort,
		PeerPort:                c.Etcd.PeerPort,
		CertDir:                 c.PKI.Dir,
		QuotaBackendBytes:       int64(c.Etcd.QuotaBackendBytes),
		AutoCompactionMode:      "periodic",
		AutoCompactionRetention: c.Etcd.AutoCompactionRetention.D().String(),
		SnapshotCount:           uint64(max(c.Etcd.SnapshotCount, 0)),
		HeartbeatMs:             uint(c.Etcd.HeartbeatInterval.D() / time.Millisecond),
		ElectionMs:              uint(c.Etcd.ElectionTimeout.D() / time.Millisecond),
		ExtraFlags:              c.Etcd.ExtraFlags,
	}
}

// OfflineIdentity is the member name and IP CheckOffline uses: the static
// identity, or PlaceholderIP (placeholder true) when the identity comes
// from IMDS.
func (c *Config) OfflineIdentity() (name string, ip netip.Addr, placeholder bool) {
	if c.Node.Identity == "static" {
		ip, _ = netip.ParseAddr(c.Node.IP)
		name = c.Node.Name
		if name == "" {
			name = identity.MemberName(ip)
		}
		return name, ip, false
	}
	return identity.MemberName(PlaceholderIP), PlaceholderIP, true
}

// CheckOptions selects the checks beyond the configuration itself.
type CheckOptions struct {
	// Files also checks this machine's files: the CA certificate and key
	// (present, readable, key not accessible by group or others) and that
	// the data and certificate dirs are usable by the agent's user. Leave it
	// off to check a config meant for another machine.
	Files bool
}

// Check is Load plus CheckOffline, with the problems of both reported in
// one *Error. It is every check the agent makes before touching the
// network: `etcd-agent run` and `etcd-agent config check` call it.
func Check(src Source, opts CheckOptions) (*Config, []string, error) {
	return loadChecked(src, func(c *Config, valid bool) []Problem { return c.offlineProblems(opts, valid) })
}

// CheckOffline checks a loaded configuration beyond Validate: the etcd member
// spec the agent would run (etcd.extraFlags and their values, the tuning
// settings) and, with opts.Files, this machine's files. Every problem is
// reported in one *Error.
func CheckOffline(c *Config, opts CheckOptions) error {
	if ps := c.offlineProblems(opts, true); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

// offlineProblems: valid says Validate passed, so the whole member spec can
// be checked without repeating Validate's problems; otherwise only the
// extra flags and files are.
func (c *Config) offlineProblems(opts CheckOptions, valid bool) []Problem {
	var ps []Problem
	for i, raw := range c.Etcd.ExtraFlags {
		field := fmt.Sprintf("etcd.extraFlags[%d]", i)
		if etcdconf.StrictReconfigOff(raw) {
			ps = append(ps, Problem{Field: field, Value: raw, Problem: strictReconfigProblem, Fix: strictReconfigFix})
			continue
		}
		if !strings.HasPrefix(raw, "--") {
			continue // Validate reports it
		}
		if err := etcdconf.CheckExtraFlag(raw); err != nil {
			ps = append(ps, Problem{
				Field:   field,
				Value:   raw,
				Problem: strings.TrimPrefix(err.Error(), "extra flag "),
				Fix:     extraFlagFix(raw),
			})
		}
	}
	if valid {
		name, ip, _ := c.OfflineIdentity()
		spec := c.MemberSpec(name, ip)
		spec.ExtraFlags = nil // checked above, entry by entry
		if err := spec.Validate(); err != nil {
			for _, e := range splitJoined(err) {
				ps = append(ps, Problem{Field: "etcd member", Problem: e.Error(), Fix: "correct the node and etcd settings it names"})
			}
		}
	}
	if opts.Files {
		ps = append(ps, c.fileProblems()...)
	}
	return ps
}

// splitJoined unwraps Spec.Validate's "validate etcd spec: <joined>" into
// its problems.
func splitJoined(err error) []error {
	if inner := errors.Unwrap(err); inner != nil {
		if j, ok := inner.(interface{ Unwrap() []error }); ok {
			return j.Unwrap()
		}
	}
	return []error{err}
}

// tuningFields are the config fields that own etcd flags an operator might
// try to pass as extra flags, with the unit the value takes.
var tuningFields = map[string]struct{ field, unit string }{
	"snapshot-count":            {"etcd.snapshotCount", ""},
	"heartbeat-interval":        {"etcd.heartbeatInterval", "ms"},
	"election-timeout":          {"etcd.electionTimeout", "ms"},
	"quota-backend-bytes":       {"etcd.quotaBackendBytes", ""},
	"auto-compaction-retention": {"etcd.autoCompactionRetention", ""},
	"name":                      {"node.name", ""},
	"data-dir":                  {"node.dataDir", ""},
}

// The refusal of an extra flag that turns etcd's strict reconfiguration
// check off: the agent's membership changes count on etcd refusing one that
// would cost quorum.
const (
	strictReconfigProblem = "turns off etcd's strict reconfiguration check, which etcd-agent relies on to refuse a membership change that would cost quorum"
	strictReconfigFix     = "remove it: etcd keeps the check on by default"
)

func extraFlagFix(raw string) string {
	name, value, hasValue := strings.Cut(strings.TrimPrefix(raw, "--"), "=")
	if t, ok := tuningFields[name]; ok {
		if hasValue && value != "" {
			return fmt.Sprintf("remove it and set %s: %s%s", t.field, value, t.unit)
		}
		return "remove it and set " + t.field
	}
	if _, owned := etcdconf.OwnedFlag(name); owned {
		return "remove it: etcd-agent sets this flag itself"
	}
	return "remove it, or correct it to an etcd server flag (etcd --help) with a valid value"
}

// fileProblems checks the files the agent reads or writes first, so that a
// permission or ownership mistake is a config error (exit 78) with its fix,
// not a restart loop.
func (c *Config) fileProblems() []Problem {
	var ps []Problem
	bad := func(field, value, problem, fix string) {
		ps = append(ps, Problem{Field: field, Value: value, Problem: problem, Fix: fix})
	}
	who := fmt.Sprintf("the agent's user (uid %d)", os.Getuid())
	fi, err := os.Stat(c.PKI.CAKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		bad("pki.caKey", c.PKI.CAKey, "does not exist", "install the cluster CA key there (`etcd-agent ca init --dir DIR` creates a CA), owned by "+who+", mode 0600")
	case err != nil:
		bad("pki.caKey", c.PKI.CAKey, err.Error(), "make its directory searchable by "+who)
	case !fi.Mode().IsRegular():
		bad("pki.caKey", c.PKI.CAKey, "is not a regular file", "point pki.caKey at the CA's private key file")
	case fi.Mode().Perm()&0o077 != 0:
		bad("pki.caKey", c.PKI.CAKey, fmt.Sprintf("has mode %#o: the CA key is accessible by group or others", fi.Mode().Perm()),
			"chmod 600 "+c.PKI.CAKey)
	default:
		if err := readable(c.PKI.CAKey); err != nil {
			bad("pki.caKey", c.PKI.CAKey, "is not readable by "+who+": "+err.Error(), "chown it to the agent's user and chmod 600 "+c.PKI.CAKey)
		}
	}
	if _, err := os.Stat(c.PKI.CACert); errors.Is(err, fs.ErrNotExist) {
		bad("pki.caCert", c.PKI.CACert, "does not exist", "install the cluster CA certificate there (mode 0644)")
	} else if err := readable(c.PKI.CACert); err != nil {
		bad("pki.caCert", c.PKI.CACert, "is not readable by "+who+": "+err.Error(), "chmod 644 "+c.PKI.CACert)
	}
	for _, d := range [][2]string{{"node.dataDir", c.Node.DataDir}, {"pki.dir", c.PKI.Dir}} {
		if p := dirProblem(d[1], who); p != "" {
			bad(d[0], d[1], p, fmt.Sprintf("create it owned by the agent's user: install -d -m 0700 -o <agent user> %s (or chown -R <agent user> %s)", d[1], d[1]))
		}
	}
	return ps
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		var perr *fs.PathError
		if errors.As(err, &perr) {
			return perr.Err
		}
		return err
	}
	return f.Close()
}

// dirProblem says why the agent could not use dir: an existing dir must be
// writable, a missing one creatable (its nearest existing parent writable).
func dirProblem(dir, who string) string {
	const wx = 0x2 | 0x1 // W_OK | X_OK
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return "is not a directory"
	case err == nil:
		if err := syscall.Access(dir, wx); err != nil {
			return "is not writable by " + who
		}
		return ""
	case !errors.Is(err, fs.ErrNotExist):
		return err.Error()
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			if err := syscall.Access(p, wx); err != nil {
				return fmt.Sprintf("does not exist and cannot be created: %s is not writable by %s", p, who)
			}
			return ""
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}
