package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
cluster:
  discovery:
    endpoints: [https://10.0.0.10:2379]
    token: abc123
`

func load(t *testing.T, yaml string, env map[string]string, flags map[string]string) (*Config, []string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(Source{
		Path:            path,
		Env:             func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Flags:           flags,
		DefaultImageTag: "v3.7.3",
		UID:             1234,
	})
}

func TestDefaults(t *testing.T) {
	cfg, warnings, err := load(t, minimal, map[string]string{"XDG_RUNTIME_DIR": "/run/user/1001"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %v", warnings)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"cluster.size", cfg.Cluster.Size, 3},
		{"node.identity", cfg.Node.Identity, "imds"},
		{"node.dataDir", cfg.Node.DataDir, DefaultDataDir},
		{"pki.validity", cfg.PKI.Validity.D(), 365 * 24 * time.Hour},
		{"pki.renewBefore", cfg.PKI.RenewBefore.D(), 30 * 24 * time.Hour},
		{"etcd.runtime", cfg.Etcd.Runtime, "podman"},
		{"etcd.image", cfg.Etcd.Image, "gcr.io/etcd-development/etcd:v3.7.3"},
		{"etcd.quota", int64(cfg.Etcd.QuotaBackendBytes), int64(4 << 30)},
		{"podman.socket", cfg.Podman.Socket, "unix:///run/user/1001/podman/podman.sock"},
		{"agent.statusFile", cfg.Agent.StatusFile, DefaultStatusFile},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestPodmanSocketWithoutXDGRuntimeDir(t *testing.T) {
	cfg, _, err := load(t, minimal, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Podman.Socket != "unix:///run/user/1234/podman/podman.sock" {
		t.Errorf("podman.socket = %q, want the agent user's rootless socket", cfg.Podman.Socket)
	}
}

func TestOverridesFileThenEnvThenFlags(t *testing.T) {
	yaml := minimal + "node:\n  identity: static\n  ip: 10.0.0.1\n  dataDir: /file\n"
	cfg, _, err := load(t, yaml,
		map[string]string{"ETCD_AGENT_NODE_IP": "10.0.0.2", "ETCD_AGENT_DATA_DIR": "/env", "XDG_RUNTIME_DIR": "/run/user/0"},
		map[string]string{"node.dataDir": "/flag"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.IP != "10.0.0.2" || cfg.Node.DataDir != "/flag" {
		t.Errorf("ip=%s dataDir=%s, want env ip 10.0.0.2 and flag dataDir /flag", cfg.Node.IP, cfg.Node.DataDir)
	}
}

func TestUnitsParse(t *testing.T) {
	cfg, _, err := load(t, minimal+"pki:\n  validity: 90d\n  renewBefore: 240h\netcd:\n  runtime: embedded\n  quotaBackendBytes: 2GiB\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PKI.Validity.D() != 90*24*time.Hour || cfg.PKI.RenewBefore.D() != 240*time.Hour || cfg.Etcd.QuotaBackendBytes != 2<<30 {
		t.Errorf("got validity %v renewBefore %v quota %d", cfg.PKI.Validity, cfg.PKI.RenewBefore, cfg.Etcd.QuotaBackendBytes)
	}
}

// TestBadFields: every bad field yields one *Error that names the field, the
// value and a fix.
func TestBadFields(t *testing.T) {
	base := "etcd:\n  runtime: embedded\n"
	cases := []struct {
		name, yaml string
		field      string // appears in the message
		value      string // appears in the message ("" to skip)
	}{
		{"unknown top key", minimal + "clustr: {}\n", "clustr (line 6): unknown key; did you mean cluster?", ""},
		{"unknown nested key", "cluster:\n  sise: 3\n" + minimal[len("\ncluster:\n"):], "cluster.sise (line 2): unknown key; did you mean size?", ""},
		{"no discovery", base, "cluster.discovery", ""},
		{"two discovery sources", minimal + "    url: https://discovery.etcd.io/abc\n" + base, "more than one discovery source", ""},
		{"token without endpoints", "cluster:\n  discovery:\n    token: abc\n" + base, "cluster.discovery.endpoints", ""},
		{"endpoints without token", "cluster:\n  discovery:\n    endpoints: [https://a:2379]\n" + base, "cluster.discovery.token", ""},
		{"bad endpoint", "cluster:\n  discovery:\n    endpoints: [a:2379]\n    token: x\n" + base, "cluster.discovery.endpoints[0]", "a:2379"},
		{"v2 url without token", "cluster:\n  discovery:\n    url: https://discovery.etcd.io/\n" + base, "cluster.discovery.url", "https://discovery.etcd.io/"},
		{"bad static", "cluster:\n  discovery:\n    static: a=https://1.2.3.4:2380,b\n" + base, "cluster.discovery.static", "b"},
		{"size zero after negative", minimal + base + "cluster2: 1\n", "cluster2 (line 8): unknown key; did you mean cluster?", ""},
		{"negative size", "cluster:\n  size: -1\n  discovery:\n    static: a=https://1.2.3.4:2380\n" + base, "cluster.size", "-1"},
		{"huge size", "cluster:\n  size: 11\n  discovery:\n    static: a=https://1.2.3.4:2380\n" + base, "cluster.size", "11"},
		{"grace too short", "cluster:\n  deadMemberGrace: 1s\n  discovery:\n    static: a=https://1.2.3.4:2380\n" + base, "cluster.deadMemberGrace", "1s"},
		{"bad identity", minimal + base + "node:\n  identity: gce\n", "node.identity", "gce"},
		{"static without ip", minimal + base + "node:\n  identity: static\n", "node.ip", ""},
		{"bad ip", minimal + base + "node:\n  ip: 10.0.0.300\n", "node.ip", "10.0.0.300"},
		{"bad name", minimal + base + "node:\n  name: 'a b'\n", "node.name", "a b"},
		{"relative data dir", minimal + base + "node:\n  dataDir: data\n", "node.dataDir", "data"},
		{"bad duration", minimal + base + "pki:\n  validity: forever\n", "pki.validity (line 9): want a duration like 90s, 10m, 720h or 30d", "forever"},
		{"renew >= validity", minimal + base + "pki:\n  validity: 30d\n  renewBefore: 30d\n", "pki.renewBefore", "720h0m0s"},
		{"validity too short", minimal + base + "pki:\n  validity: 1m\n  renewBefore: 30s\n", "pki.validity", "1m0s"},
		{"bad runtime", minimal + "etcd:\n  runtime: docker\n", "etcd.runtime", "docker"},
		{"same ports", minimal + base + "  clientPort: 2380\n", "etcd.peerPort", "2380"},
		{"port range", minimal + base + "  peerPort: 70000\n", "etcd.peerPort", "70000"},
		{"small quota", minimal + base + "  quotaBackendBytes: 1MiB\n", "etcd.quotaBackendBytes", "1048576"},
		{"bad size syntax", minimal + base + "  quotaBackendBytes: lots\n", "etcd.quotaBackendBytes (line 8): want a size like 512MiB, 4GiB or a byte count", "lots"},
		{"extra flag without dashes", minimal + base + "  extraFlags: [snapshot-count=5]\n", "etcd.extraFlags[0]", "snapshot-count=5"},
		{"podman bad socket", minimal + "etcd:\n  runtime: podman\npodman:\n  socket: tcp://x\n", "podman.socket", "tcp://x"},
		{"bad log level", minimal + base + "agent:\n  logLevel: loud\n", "agent.logLevel", "loud"},
		{"bad log format", minimal + base + "agent:\n  logFormat: xml\n", "agent.logFormat", "use text or json"},
		{"discovery cert without key", minimal + "    cert: /c\n" + base, "cluster.discovery.cert", "/c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := load(t, c.yaml, nil, nil)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.field) {
				t.Errorf("message %q does not name %q", msg, c.field)
			}
			if c.value != "" && !strings.Contains(msg, c.value) {
				t.Errorf("message %q does not show the value %q", msg, c.value)
			}
			if !saysFix(msg) {
				t.Errorf("message %q gives no fix", msg)
			}
		})
	}
}

func TestEvenSizeWarns(t *testing.T) {
	_, warnings, err := load(t, "cluster:\n  size: 4\n"+minimal[len("\ncluster:\n"):]+"etcd:\n  runtime: embedded\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "even") {
		t.Errorf("warnings = %v, want one about an even size", warnings)
	}
}

func TestMissingFile(t *testing.T) {
	_, _, err := Load(Source{Path: "/nonexistent/config.yaml"})
	var cerr *Error
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "/nonexistent/config.yaml") {
		t.Fatalf("err = %v, want a config error naming the path", err)
	}
}

func TestManyProblemsReportedTogether(t *testing.T) {
	_, _, err := load(t, minimal+"etcd:\n  runtime: embedded\n  clientPort: 99999\nnode:\n  identity: x\n", nil, nil)
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 2 {
		t.Fatalf("err = %v, want two problems", err)
	}
}

// saysFix: the message gives the fix, or says what is wanted instead (a
// YAML type error, an unknown key and its nearest known one).
func saysFix(msg string) bool {
	for _, w := range []string{"fix:", ": want ", "did you mean", " takes "} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}
