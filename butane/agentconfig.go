package butane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

// agentConfigDoc is the part of the agent's config.yaml the spec sets; the
// agent defaults the rest. The Podman socket is left out on purpose: the uid
// is only known on the node, and the agent derives the rootless socket from
// XDG_RUNTIME_DIR or its own uid.
type agentConfigDoc struct {
	Cluster struct {
		Name      string        `yaml:"name"`
		Size      int           `yaml:"size"`
		Discovery SpecDiscovery `yaml:"discovery"`
	} `yaml:"cluster"`
	Node struct {
		Identity string `yaml:"identity"`
	} `yaml:"node"`
	Etcd struct {
		Runtime           string   `yaml:"runtime"`
		Image             string   `yaml:"image"`
		QuotaBackendBytes string   `yaml:"quotaBackendBytes,omitempty"`
		ExtraFlags        []string `yaml:"extraFlags,omitempty"`
	} `yaml:"etcd"`
	Metrics *config.Metrics `yaml:"metrics,omitempty"`
	Backup  *SpecBackup     `yaml:"backup,omitempty"`
	Clients *SpecClients    `yaml:"clients,omitempty"`
	Fleet   *struct {
		AutoScaling config.AutoScaling `yaml:"autoScaling"`
	} `yaml:"fleet,omitempty"`
	FleetLock *config.FleetLock `yaml:"fleetLock,omitempty"`
}

const agentConfigHeader = "# etcd-agent configuration, rendered by `etcd-agent butane`.\n" +
	"# Unset keys take the agent's defaults (see agent/config).\n"

// agentConfig renders /etc/etcd-agent/config.yaml for the defaulted spec.
func agentConfig(s Spec) ([]byte, error) {
	var d agentConfigDoc
	d.Cluster.Name = s.Cluster.Name
	d.Cluster.Size = s.Cluster.Size
	d.Cluster.Discovery = s.Discovery
	d.Node.Identity = "imds"
	d.Etcd.Runtime = "podman"
	d.Etcd.Image = s.Etcd.Image
	if _, err := config.ParseSize(s.Etcd.QuotaBackendBytes); err == nil {
		// Spec.validate reports a quota that does not parse.
		d.Etcd.QuotaBackendBytes = s.Etcd.QuotaBackendBytes
	}
	d.Etcd.ExtraFlags = s.Etcd.ExtraFlags
	if s.Metrics != (config.Metrics{}) {
		d.Metrics = &s.Metrics
	}
	d.Backup = backupDoc(s.Backup)
	d.Clients = clientsDoc(s.Clients)
	if s.AutoScaling != (config.AutoScaling{}) {
		d.Fleet = &struct {
			AutoScaling config.AutoScaling `yaml:"autoScaling"`
		}{s.AutoScaling}
	}
	if f := s.Reboots.FleetLock; f.Address != "" || len(f.Slots) > 0 || f.MaintenanceWindow != nil {
		d.FleetLock = &f
	}
	var b strings.Builder
	b.WriteString(agentConfigHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode agent config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode agent config: %w", err)
	}
	return []byte(b.String()), nil
}

// checkAgentConfig loads the rendered config with the agent's own loader,
// as the node will at boot, and reports its problems under the spec's field
// names. Only the agent's built-in defaults apply (no environment, uid 1000
// for the socket default).
func checkAgentConfig(ps *problems, data []byte, imageTag string) error {
	dir, err := os.MkdirTemp("", "etcd-agent-butane-")
	if err != nil {
		return fmt.Errorf("check agent config: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("check agent config: %w", err)
	}
	// The same offline checks as `etcd-agent config check` (etcd flags
	// included), minus the files, which live on the node.
	_, _, err = config.Check(config.Source{
		Path:            path,
		Env:             func(string) (string, bool) { return "", false },
		DefaultImageTag: imageTag,
		UID:             1000,
	}, config.CheckOptions{})
	if err == nil {
		return nil
	}
	cerr, ok := err.(*config.Error)
	if !ok {
		return fmt.Errorf("check agent config: %w", err)
	}
	for _, p := range cerr.Problems {
		if p.Field == "" {
			return fmt.Errorf("check agent config: rendered config does not decode: %s", p)
		}
		// Lines of the rendered file mean nothing to the spec's author.
		p.Field, p.Line = specField(p.Field), 0
		*ps = append(*ps, p)
	}
	return nil
}

// specField maps an agent config key to the spec key that set it.
func specField(agentField string) string {
	if rest, ok := strings.CutPrefix(agentField, "cluster.discovery"); ok {
		return "discovery" + rest
	}
	if rest, ok := strings.CutPrefix(agentField, "fleet.autoScaling"); ok {
		return "autoScaling" + rest
	}
	return agentField
}
