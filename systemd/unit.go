package systemd

import (
	"bytes"
	_ "embed"
	"fmt"
	"path"
	"regexp"
	"strings"
	"text/template"
)

// Unit file defaults.
const (
	DefaultUser       = "etcd-user"
	DefaultBinaryPath = "/usr/local/bin/etcd-agent"
	DefaultConfigPath = "/etc/etcd-agent/config.yaml"
	// DefaultDataDir is the agent config's default node.dataDir.
	DefaultDataDir = "/var/lib/etcd-agent/data"
	// UnitName is the name the unit file is installed under.
	UnitName = "etcd-agent.service"
	// StartUnitName is the unit that starts UnitName once the boot has
	// completed; it is the one to enable.
	StartUnitName = "etcd-agent-start.service"
)

//go:embed etcd-agent.service
var unitTemplate string

//go:embed etcd-agent-start.service
var startUnitTemplate string

var (
	unitTmpl      = template.Must(template.New(UnitName).Option("missingkey=error").Parse(unitTemplate))
	startUnitTmpl = template.Must(template.New(StartUnitName).Option("missingkey=error").Parse(startUnitTemplate))
)

// UnitOptions are the values rendered into etcd-agent.service. The zero value
// renders the defaults.
type UnitOptions struct {
	// User runs the agent; it also owns the rootless Podman socket the agent
	// talks to. Empty means DefaultUser.
	User string
	// Group is the agent's primary group. Empty means the same name as User.
	Group string
	// BinaryPath is the absolute path of the etcd-agent binary. Empty means
	// DefaultBinaryPath.
	BinaryPath string
	// ConfigPath is the absolute path of the agent's config file. Empty means
	// DefaultConfigPath.
	ConfigPath string
	// DataDir is the etcd data directory (node.dataDir). The unit requires
	// its mount, so an unmounted volume is never taken for "no data". Empty
	// means DefaultDataDir.
	DataDir string
	// UID is User's numeric uid. When non-zero the unit sets
	// XDG_RUNTIME_DIR=/run/user/<UID> (where the rootless Podman socket lives).
	// Zero leaves XDG_RUNTIME_DIR unset: systemd has no specifier for User='s
	// uid (%U is the service manager's), so the agent then derives the path
	// from its own uid.
	UID int
}

// userName accepts the names useradd accepts by default (and systemd's
// User= with them), and nothing that could break the unit file's syntax.
var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}\$?$`)

// withDefaults fills empty fields.
func (o UnitOptions) withDefaults() UnitOptions {
	if o.User == "" {
		o.User = DefaultUser
	}
	if o.Group == "" {
		o.Group = o.User
	}
	if o.BinaryPath == "" {
		o.BinaryPath = DefaultBinaryPath
	}
	if o.ConfigPath == "" {
		o.ConfigPath = DefaultConfigPath
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	return o
}

// validate rejects values that systemd would reject or read differently
// from what was meant, naming the field.
func (o UnitOptions) validate() error {
	for _, f := range []struct{ name, value string }{{"User", o.User}, {"Group", o.Group}} {
		if !userName.MatchString(f.value) {
			return fmt.Errorf("invalid %s %q: want a user/group name like %q", f.name, f.value, DefaultUser)
		}
	}
	for _, f := range []struct{ name, value string }{{"BinaryPath", o.BinaryPath}, {"ConfigPath", o.ConfigPath}, {"DataDir", o.DataDir}} {
		if !path.IsAbs(f.value) {
			return fmt.Errorf("invalid %s %q: want an absolute path", f.name, f.value)
		}
		// Whitespace would split ExecStart's arguments, '%' starts a systemd
		// specifier, quotes and backslashes are unquoted by systemd.
		if i := strings.IndexFunc(f.value, func(r rune) bool {
			return r <= ' ' || r == 0x7f || strings.ContainsRune(`%"'\;`, r)
		}); i >= 0 {
			return fmt.Errorf("invalid %s %q: character %q is not allowed in a unit file path", f.name, f.value, f.value[i])
		}
	}
	if o.UID < 0 {
		return fmt.Errorf("invalid UID %d: want a non-negative uid", o.UID)
	}
	return nil
}

// UnitFile renders etcd-agent.service with opts, defaults filled in.
func UnitFile(opts UnitOptions) ([]byte, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("render %s: %w", UnitName, err)
	}
	var buf bytes.Buffer
	if err := unitTmpl.Execute(&buf, struct {
		UnitOptions
		StartUnit string
	}{opts, StartUnitName}); err != nil {
		return nil, fmt.Errorf("render %s: %w", UnitName, err)
	}
	return buf.Bytes(), nil
}

// StartUnitFile renders etcd-agent-start.service, the enabled unit that
// starts etcd-agent.service once the boot has completed.
func StartUnitFile() ([]byte, error) {
	var buf bytes.Buffer
	if err := startUnitTmpl.Execute(&buf, struct{ AgentUnit string }{UnitName}); err != nil {
		return nil, fmt.Errorf("render %s: %w", StartUnitName, err)
	}
	return buf.Bytes(), nil
}
