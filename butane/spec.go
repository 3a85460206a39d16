package butane

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/systemd"
)

// Spec is the short cluster spec an operator writes. Every field documents
// its zero value. Unknown keys are errors.
type Spec struct {
	// Variant and Version select the Butane spec. Zero: "fcos" and "1.6.0"
	// (Ignition 3.5.0); "1.5.0" gives Ignition 3.4.0.
	Variant string `yaml:"variant"`
	Version string `yaml:"version"`
	// Cluster names and sizes the cluster.
	Cluster SpecCluster `yaml:"cluster"`
	// Discovery says how the founding members find each other; exactly one
	// of endpoints+token, url or static, as in the agent's config.
	Discovery SpecDiscovery `yaml:"discovery"`
	// Agent is where each node downloads the etcd-agent binary from.
	Agent SpecAgent `yaml:"agent"`
	// CA is the cluster CA (from `etcd-agent ca init`), shipped to every node.
	CA SpecCA `yaml:"ca"`
	// SSH holds the keys allowed to log in as User (for `etcd-agent status`).
	SSH SpecSSH `yaml:"ssh"`
	// Etcd tunes the etcd member.
	Etcd SpecEtcd `yaml:"etcd"`
	// Metrics is each agent's Prometheus endpoint, as in the agent's
	// config (metrics.enabled, metrics.address). Zero: off.
	Metrics config.Metrics `yaml:"metrics"`
	// Backup configures the agents' snapshots (the agent config's backup:
	// section, copied to every node). Zero: the agent's defaults, local
	// snapshots every 30m.
	Backup SpecBackup `yaml:"backup"`
	// Clients: the client DNS SRV records the agents keep in Route 53 (the
	// agent config's clients: section). Zero: off.
	Clients SpecClients `yaml:"clients"`
	// AutoScaling names the Auto Scaling group and the lifecycle hooks the
	// agents complete (the agent config's fleet.autoScaling, copied to
	// every node; docs/deploy-aws.md). Zero: no hooks (EC2's notices are
	// still watched).
	AutoScaling config.AutoScaling `yaml:"autoScaling"`
	// Reboots coordinates the nodes' OS update reboots (Zincati) with the
	// agents (reboots.go). Zero: fleet_lock through each node's agent.
	Reboots SpecReboots `yaml:"reboots"`
	// User is the unprivileged user that runs the agent and rootless Podman.
	// Zero: "etcd-user".
	User string `yaml:"user"`
	// Pointer is where the full Ignition config will be uploaded. Zero: no
	// pointer, which is only possible with ca.allowKeyInUserData and a
	// config under 16 KiB.
	Pointer SpecPointer `yaml:"pointer"`

	// baseDir resolves relative file paths (the spec file's directory).
	baseDir string
}

// SpecCluster names and sizes the cluster.
type SpecCluster struct {
	// Name labels the cluster. Zero: "etcd".
	Name string `yaml:"name"`
	// Size is the number of voting members. Zero: 3. Must be odd.
	Size int `yaml:"size"`
}

// SpecDiscovery selects one discovery source, with the agent config's keys
// and meaning (cluster.discovery there).
type SpecDiscovery struct {
	// Endpoints and Token select etcd's v3 discovery protocol (recommended):
	// the discovery cluster's client URLs and a token from
	// `etcd-agent discovery new --size N`.
	Endpoints []string `yaml:"endpoints,omitempty"`
	Token     string   `yaml:"token,omitempty"`
	// URL selects the v2 discovery protocol (https://host/<token> or
	// .../v2/keys/_etcd/registry/<token>).
	URL string `yaml:"url,omitempty"`
	// Static is a fixed founding peer list "name=https://ip:2380,...".
	Static string `yaml:"static,omitempty"`
}

// SpecAgent locates the agent binary.
type SpecAgent struct {
	// URL is an https:// or s3:// URL of the linux binary. Required.
	URL string `yaml:"url"`
	// SHA512 is the binary's sha512 as 128 hex digits (a "sha512-" prefix
	// is accepted). Required: Ignition refuses a download that does not match.
	SHA512 string `yaml:"sha512"`
}

// SpecCA locates the CA files, read at render time. Relative paths are
// relative to the spec file.
type SpecCA struct {
	// Cert and Key are ca.crt and ca.key. Required. The key must be mode 0600.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// AllowKeyInUserData permits user data that contains the CA key (no
	// pointer). Zero: false. Any process on the instance that can reach IMDS
	// can read user data, and anyone with ec2:DescribeInstanceAttribute too.
	AllowKeyInUserData bool `yaml:"allowKeyInUserData"`
}

// SpecSSH lists the public keys allowed to log in as the agent's user.
// At least one key is required.
type SpecSSH struct {
	// AuthorizedKeys are authorized_keys lines ("ssh-ed25519 AAAA... me").
	AuthorizedKeys []string `yaml:"authorizedKeys"`
	// AuthorizedKeysFile is a file of such lines (e.g. ~/.ssh/id_ed25519.pub);
	// blank lines and # comments are skipped.
	AuthorizedKeysFile string `yaml:"authorizedKeysFile"`
}

// SpecEtcd tunes the etcd member.
type SpecEtcd struct {
	// Image is the etcd container image. Zero: the official image at the
	// etcd version this binary was built with.
	Image string `yaml:"image"`
	// QuotaBackendBytes is the backend quota ("4GiB" or bytes). Zero: the
	// agent's default (4 GiB).
	QuotaBackendBytes string `yaml:"quotaBackendBytes"`
	// ExtraFlags are passed to etcd verbatim ("--flag=value").
	ExtraFlags []string `yaml:"extraFlags"`
}

// SpecPointer is where the full Ignition config is uploaded.
type SpecPointer struct {
	// URL is s3://bucket/key or https://host/path. For s3:// the instance
	// needs an IAM role allowed s3:GetObject on it.
	URL string `yaml:"url"`
}

// Spec defaults.
const (
	DefaultVariant = "fcos"
	DefaultVersion = "1.6.0"
)

// LoadSpec reads and strictly decodes a spec file. Relative paths in it are
// resolved against the file's directory. Errors are *config.Error.
func LoadSpec(path string) (Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, &config.Error{Problems: []config.Problem{{
			Field: "--spec", Value: path, Problem: err.Error(), Fix: "pass the path of your cluster spec file",
		}}}
	}
	return ParseSpec(data, filepath.Dir(path), path)
}

// ParseSpec strictly decodes spec YAML; baseDir resolves relative paths and
// name labels errors. Errors are *config.Error.
func ParseSpec(data []byte, baseDir, name string) (Spec, error) {
	var s Spec
	lines, ps := config.DecodeYAML(data, &s)
	if len(ps) > 0 {
		return Spec{}, &config.Error{File: name, Problems: ps}
	}
	if len(lines) == 0 {
		return Spec{}, &config.Error{Problems: []config.Problem{{
			Field: name, Problem: "is empty",
			Fix: "write the cluster spec (see docs/deploy-aws.md)",
		}}}
	}
	s.baseDir = baseDir
	return s, nil
}

// withDefaults fills zero values; imageTag is the agent's etcd version.
func (s Spec) withDefaults(imageTag string) Spec {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&s.Variant, DefaultVariant)
	def(&s.Version, DefaultVersion)
	def(&s.Cluster.Name, config.DefaultClusterName)
	if s.Cluster.Size == 0 {
		s.Cluster.Size = config.DefaultClusterSize
	}
	def(&s.User, systemd.DefaultUser)
	s.Reboots.applyDefaults()
	def(&s.Etcd.Image, config.DefaultImageRepo+":"+imageTag)
	s.Agent.SHA512 = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s.Agent.SHA512)), "sha512-")
	return s
}

// path resolves a spec-relative path.
func (s Spec) path(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if p == "" || filepath.IsAbs(p) || s.baseDir == "" {
		return p
	}
	return filepath.Join(s.baseDir, p)
}
