package butane

import (
	"path"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/systemd"
)

// Paths on the node.
const (
	AgentBinaryPath = systemd.DefaultBinaryPath
	AgentConfigPath = config.DefaultPath
	CACertPath      = config.DefaultCACert
	CAKeyPath       = config.DefaultCAKey
	// StateDir is the agent's state (data, issued certificates); the unit's
	// StateDirectory= chowns it to the user as well, with mode 0755.
	StateDir = "/var/lib/etcd-agent"
	// podmanSocketUnit is the unit Fedora CoreOS ships for the user manager.
	podmanSocketUnit = "/usr/lib/systemd/user/podman.socket"
)

// nodeParts is everything the node config is made of, rendered or read.
type nodeParts struct {
	spec        Spec
	in          inputs
	agentConfig []byte
	unit        []byte
	startUnit   []byte
}

// journalGroup may read the whole system journal (systemd's own group).
const journalGroup = "systemd-journal"

// enabled is addressable for buUnit.Enabled.
var enabled = true

// nodeConfig lays out the full node Butane config: nothing but what the
// agent needs, SELinux untouched.
func nodeConfig(p nodeParts) buConfig {
	user := p.spec.User
	home := path.Join("/home", user)
	userUnits := path.Join(home, ".config/systemd/user")
	files := []buFile{
		// Linger starts the user's manager (and so podman.socket) at
		// boot, without a login.
		{buNode: buNode{Path: path.Join("/var/lib/systemd/linger", user), Mode: 0o644}},
		{buNode: buNode{Path: AgentBinaryPath, Mode: 0o755}, Contents: &buResource{
			Source:       p.spec.Agent.URL,
			Verification: &buVerification{Hash: "sha512-" + p.spec.Agent.SHA512},
		}},
		{buNode: buNode{Path: AgentConfigPath, Mode: 0o644}, Contents: &buResource{Inline: string(p.agentConfig)}},
		{buNode: buNode{Path: CACertPath, Mode: 0o644}, Contents: &buResource{Inline: string(p.in.caCert)}},
		{buNode: owned(CAKeyPath, 0o600, user), Contents: &buResource{Inline: string(p.in.caKey)}},
	}
	if z := zincatiConfig(p.spec.Reboots); z != "" {
		// Zincati reboots only when the node's agent grants it.
		files = append(files, buFile{buNode: buNode{Path: ZincatiConfigPath, Mode: 0o644}, Contents: &buResource{Inline: z}})
	}
	return buConfig{
		Variant: p.spec.Variant,
		Version: p.spec.Version,
		Passwd: &buPasswd{Users: []buUser{{
			// No sudo, no wheel: the user runs rootless Podman.
			// systemd-journal lets it read the agent's journal
			// (`journalctl -u etcd-agent`), where status points.
			Name:              user,
			Groups:            []string{journalGroup},
			SSHAuthorizedKeys: p.in.sshKeys,
		}}},
		Storage: &buStorage{
			// The user's systemd directories must be the user's, or its
			// manager cannot use them; Ignition would create missing parents
			// as root.
			Directories: []buNode{
				owned(path.Join(home, ".config"), 0o755, user),
				owned(path.Join(home, ".config/systemd"), 0o755, user),
				owned(userUnits, 0o755, user),
				owned(path.Join(userUnits, "sockets.target.wants"), 0o755, user),
				owned(StateDir, 0o755, user),
			},
			Files: files,
			Links: []buLink{{
				buNode: owned(path.Join(userUnits, "sockets.target.wants/podman.socket"), 0, user),
				Target: podmanSocketUnit,
			}},
		},
		// The agent is started by the enabled start unit once the boot has
		// completed, so that waiting for READY=1 never holds the boot up.
		Systemd: &buSystemd{Units: []buUnit{
			{Name: systemd.StartUnitName, Enabled: &enabled, Contents: string(p.startUnit)},
			{Name: systemd.UnitName, Contents: string(p.unit)},
		}},
	}
}
