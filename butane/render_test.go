package butane

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

func TestOverLimitFallsBackToPointer(t *testing.T) {
	spec := freshCASpec(t)
	spec.CA.AllowKeyInUserData = true // only size can force the pointer
	for i := 1; len(spec.SSH.AuthorizedKeys) < 160; i++ {
		spec.SSH.AuthorizedKeys = append(spec.SSH.AuthorizedKeys, testSSHKey(t, i))
	}

	spec.Pointer.URL = ""
	_, err := Render(spec, Options{DefaultImageTag: "v3.7.3"})
	var cerr *config.Error
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "pointer.url") || !strings.Contains(err.Error(), "16384") {
		t.Fatalf("over the limit without pointer.url: err = %v, want a config error naming pointer.url and the limit", err)
	}

	spec.Pointer.URL = "s3://bucket/etcd/full.ign"
	res, err := Render(spec, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ignition) <= UserDataLimit {
		t.Fatalf("full config is %d bytes; the test needs it over %d", len(res.Ignition), UserDataLimit)
	}
	if !res.Pointer || len(res.UserData) > UserDataLimit {
		t.Fatalf("Pointer = %v, user data %d bytes", res.Pointer, len(res.UserData))
	}
	sum := sha512.Sum512(res.Uploads[0].Contents)
	wantHash := "sha512-" + hex.EncodeToString(sum[:])
	if !bytes.Equal(res.Uploads[0].Contents, res.Ignition) || !bytes.Contains(res.UserData, []byte(wantHash)) {
		t.Errorf("user data does not pin the uploaded config's sha512 %s", wantHash)
	}
	if rpt, err := ignitionVersions[DefaultVersion].parse(res.UserData); err != nil || len(rpt.Entries) != 0 {
		t.Errorf("pointer config invalid: %v %v", err, rpt)
	}
	checkPointer(t, spec, res)
}

func TestCAKeyNeverInUserDataByDefault(t *testing.T) {
	spec := freshCASpec(t)
	key, err := os.ReadFile(filepath.Join(spec.baseDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	spec.Pointer.URL = ""
	_, err = Render(spec, Options{DefaultImageTag: "v3.7.3"})
	if err == nil || !strings.Contains(err.Error(), "pointer.url") || !strings.Contains(err.Error(), "IMDS") {
		t.Fatalf("err = %v, want pointer.url required because of IMDS", err)
	}

	spec.Pointer.URL = "https://config.example.com/full.ign"
	res, err := Render(spec, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	full := parseIgnition(t, res.Ignition)
	if got := fileContents(t, findFile(t, full, CAKeyPath)); !bytes.Equal(got, key) {
		t.Error("the full config does not carry the CA key")
	}
	if bytes.Contains(res.UserData, []byte("ca.key")) || len(parseIgnition(t, res.UserData).Storage.Files) != 0 {
		t.Error("user data carries files")
	}

	spec.Pointer.URL = ""
	spec.CA.AllowKeyInUserData = true
	res, err = Render(spec, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pointer || !bytes.Equal(res.UserData, res.Ignition) || len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "CA key") {
		t.Errorf("allowKeyInUserData: Pointer=%v notes=%q", res.Pointer, res.Notes)
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	spec := freshCASpec(t)
	a, err := Render(spec, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render(spec, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Butane, b.Butane) || !bytes.Equal(a.Ignition, b.Ignition) || !bytes.Equal(a.UserData, b.UserData) {
		t.Error("two renders of the same spec differ")
	}
}

func TestBadSpecs(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, s *Spec)
		field  string // the Problem's field
		want   string // in the problem or fix
	}{
		{"missing sha512", func(_ *testing.T, s *Spec) { s.Agent.SHA512 = "" }, "agent.sha512", "sha512sum"},
		{"short sha512", func(_ *testing.T, s *Spec) { s.Agent.SHA512 = "abcd" }, "agent.sha512", "has 4 characters"},
		{"sha256 given", func(_ *testing.T, s *Spec) { s.Agent.SHA512 = strings.Repeat("a", 64) }, "agent.sha512", "has 64 characters"},
		{"non-hex sha512", func(_ *testing.T, s *Spec) { s.Agent.SHA512 = strings.Repeat("z", 128) }, "agent.sha512", "not hexadecimal"},
		{"missing agent url", func(_ *testing.T, s *Spec) { s.Agent.URL = "" }, "agent.url", "is required"},
		{"http agent url", func(_ *testing.T, s *Spec) { s.Agent.URL = "http://example.com/etcd-agent" }, "agent.url", `scheme "http"`},
		{"s3 url without key", func(_ *testing.T, s *Spec) { s.Agent.URL = "s3://bucket" }, "agent.url", "bucket and a key"},
		{"bad pointer url", func(_ *testing.T, s *Spec) { s.Pointer.URL = "ftp://x/y" }, "pointer.url", "only https and s3"},
		{"even size", func(_ *testing.T, s *Spec) { s.Cluster.Size = 4 }, "cluster.size", "use 3 or 5"},
		{"huge size", func(_ *testing.T, s *Spec) { s.Cluster.Size = 11 }, "cluster.size", "more than 9"},
		{"missing discovery", func(_ *testing.T, s *Spec) { s.Discovery = SpecDiscovery{} }, "discovery", "no discovery source"},
		{"two discovery sources", func(_ *testing.T, s *Spec) { s.Discovery.URL = "https://d.example.com/abc" }, "discovery", "more than one"},
		{"token without endpoints", func(_ *testing.T, s *Spec) { s.Discovery.Endpoints = nil }, "discovery.endpoints", "is empty"},
		{"bad static", func(_ *testing.T, s *Spec) { s.Discovery = SpecDiscovery{Static: "a-10.0.0.1"} }, "discovery.static", "name=https"},
		{"bad extra flag", func(_ *testing.T, s *Spec) { s.Etcd.ExtraFlags = []string{"snapshot-count=5"} }, "etcd.extraFlags[0]", "--flag=value"},
		{"etcd flag the agent owns", func(_ *testing.T, s *Spec) { s.Etcd.ExtraFlags = []string{"--snapshot-count=5"} }, "etcd.extraFlags[0]", "etcd.snapshotCount"},
		{"bad quota", func(_ *testing.T, s *Spec) { s.Etcd.QuotaBackendBytes = "lots" }, "etcd.quotaBackendBytes", "size"},
		{"bad metrics address", func(_ *testing.T, s *Spec) { s.Metrics = config.Metrics{Enabled: true, Address: "2382"} }, "metrics.address", "host:port"},
		{"bad reboot strategy", func(_ *testing.T, s *Spec) { s.Reboots.Strategy = "immediate" }, "reboots.strategy", "zincati-default"},
		{"bad zincati group", func(_ *testing.T, s *Spec) { s.Reboots.Group = "a b" }, "reboots.group", "group name"},
		{"fleet lock off under fleet_lock", func(_ *testing.T, s *Spec) { s.Reboots.FleetLock.Disabled = true }, "reboots.fleetLock.disabled", "zincati-default"},
		{"fleet lock set under zincati-default", func(_ *testing.T, s *Spec) {
			s.Reboots = SpecReboots{Strategy: StrategyZincatiDefault, FleetLock: config.FleetLock{Address: "127.0.0.1:9300"}}
		}, "reboots.fleetLock", "remove it"},
		{"maintenance window under zincati-default", func(_ *testing.T, s *Spec) {
			s.Reboots = SpecReboots{Strategy: StrategyZincatiDefault, FleetLock: config.FleetLock{MaintenanceWindow: &config.MaintenanceWindow{StartTime: "22:30", Length: config.Duration(time.Hour)}}}
		}, "reboots.fleetLock", "remove it"},
		{"bad maintenance window", func(_ *testing.T, s *Spec) {
			s.Reboots.FleetLock.MaintenanceWindow = &config.MaintenanceWindow{Days: []string{"Caturday"}, StartTime: "22:30", Length: config.Duration(time.Hour)}
		}, "fleetLock.maintenanceWindow.days[0]", "Mon, Tue"},
		{"fleet lock on a public address", func(_ *testing.T, s *Spec) { s.Reboots.FleetLock.Address = "0.0.0.0:2384" }, "fleetLock.address", "loopback"},
		{"unreadable ca key", func(_ *testing.T, s *Spec) { s.CA.Key = "missing.key" }, "ca.key", "missing.key"},
		{"missing ca key", func(_ *testing.T, s *Spec) { s.CA.Key = "" }, "ca.key", "is required"},
		{"group-readable ca key", func(t *testing.T, s *Spec) {
			if err := os.Chmod(filepath.Join(s.baseDir, "ca.key"), 0o640); err != nil {
				t.Fatal(err)
			}
		}, "ca.key", "chmod 600"},
		{"key of another CA", func(t *testing.T, s *Spec) {
			other := freshCASpec(t)
			s.CA.Key = filepath.Join(other.baseDir, "ca.key")
		}, "ca", "does not match"},
		{"malformed ssh key", func(_ *testing.T, s *Spec) { s.SSH.AuthorizedKeys = []string{"ssh-ed25519 not-base64 me"} }, "ssh.authorizedKeys[0]", "not an SSH public key"},
		{"private ssh key", func(_ *testing.T, s *Spec) {
			s.SSH.AuthorizedKeys = []string{"-----BEGIN OPENSSH PRIVATE KEY-----"}
		}, "ssh.authorizedKeys[0]", "private key"},
		{"no ssh key", func(_ *testing.T, s *Spec) { s.SSH = SpecSSH{} }, "ssh.authorizedKeys", "nobody could log in"},
		{"missing keys file", func(_ *testing.T, s *Spec) { s.SSH.AuthorizedKeysFile = "nope.pub" }, "ssh.authorizedKeysFile", "nope.pub"},
		{"bad line in keys file", func(t *testing.T, s *Spec) {
			data := "# admins\n" + testSSHKey(t, 7) + "\n\nnot a key\n"
			if err := os.WriteFile(filepath.Join(s.baseDir, "keys.pub"), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			s.SSH.AuthorizedKeysFile = "keys.pub"
		}, "line 4", "not an SSH public key"},
		{"root user", func(_ *testing.T, s *Spec) { s.User = "root" }, "user", "rootless"},
		{"core user", func(_ *testing.T, s *Spec) { s.User = "core" }, "user", "sudo"},
		{"bad user name", func(_ *testing.T, s *Spec) { s.User = "Etcd User" }, "user", "not a valid user name"},
		{"unknown variant", func(_ *testing.T, s *Spec) { s.Variant = "flatcar" }, "variant", "fcos"},
		{"unknown version", func(_ *testing.T, s *Spec) { s.Version = "1.4.0" }, "version", "1.6.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := freshCASpec(t)
			tc.mutate(t, &spec)
			_, err := Render(spec, Options{DefaultImageTag: "v3.7.3"})
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			for _, p := range cerr.Problems {
				if strings.Contains(p.Field, tc.field) && strings.Contains(p.String(), tc.want) {
					return
				}
			}
			t.Errorf("no problem on %s mentioning %q in:\n%v", tc.field, tc.want, err)
		})
	}
}

// TestParseSpecStrict: the spec's mistakes are reported like the agent
// config's, with path, line and the nearest key, all at once.
func TestParseSpecStrict(t *testing.T) {
	for name, c := range map[string]struct{ doc, want string }{
		"unknown top-level key": {"clustr:\n  size: 3\n", "invalid configuration in cluster.yaml: clustr (line 1): unknown key; did you mean cluster?"},
		"unknown nested key":    {"agent:\n  sha256: abc\n", "invalid configuration in cluster.yaml: agent.sha256 (line 2): unknown key; agent takes url, sha512"},
		"discovery TLS files":   {"discovery:\n  caCert: /x\n", "invalid configuration in cluster.yaml: discovery.caCert (line 2): unknown key; did you mean ca.cert?"},
		"wrong types":           {"cluster:\n  size: three\nca:\n  allowKeyInUserData: maybe\n", "invalid configuration in cluster.yaml (2 problems):\n  - cluster.size (line 2): want an integer, got \"three\"\n  - ca.allowKeyInUserData (line 4): want true or false, got \"maybe\""},
		"empty":                 {"", "invalid configuration: cluster.yaml: is empty (fix: write the cluster spec (see docs/deploy-aws.md))"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSpec([]byte(c.doc), t.TempDir(), "cluster.yaml")
			var cerr *config.Error
			if !errors.As(err, &cerr) || err.Error() != c.want {
				t.Fatalf("err = %v\nwant a *config.Error:\n%s", err, c.want)
			}
		})
	}
}

func TestLoadSpecResolvesRelativePaths(t *testing.T) {
	good := freshCASpec(t)
	spec := "cluster: {name: t}\n" +
		"discovery: {endpoints: [https://10.0.0.10:2379], token: abc}\n" +
		"agent: {url: https://example.com/a, sha512: " + good.Agent.SHA512 + "}\n" +
		"ca: {cert: ca.crt, key: ca.key}\n" +
		"ssh: {authorizedKeysFile: keys.pub}\n" +
		"pointer: {url: s3://b/k}\n"
	path := filepath.Join(good.baseDir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(good.baseDir, "keys.pub"), []byte(testSSHKey(t, 3)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // relative paths must not depend on the working directory
	res, err := Render(s, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Butane, []byte(testSSHKey(t, 3))) {
		t.Error("the key from keys.pub is not in the config")
	}
}

func TestSHA512AcceptsPrefixAndUpperCase(t *testing.T) {
	spec := freshCASpec(t)
	want := spec.Agent.SHA512
	spec.Agent.SHA512 = " SHA512-" + strings.ToUpper(want) + "\n"
	res, err := Render(spec, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Ignition, []byte(`"hash":"sha512-`+want+`"`)) {
		t.Error("the verification hash is not normalized to sha512-<lower-case hex>")
	}
}

// TestMetricsReachTheNodeConfig: the spec's metrics section lands in every
// node's config.yaml, and the agent's loader reads it back.
func TestMetricsReachTheNodeConfig(t *testing.T) {
	for _, m := range []config.Metrics{{}, {Enabled: true, Address: "127.0.0.1:9100"}} {
		s := freshCASpec(t)
		s.Metrics = m
		data, err := agentConfig(s)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.Load(config.Source{Path: path, DefaultImageTag: "v3.7.3", UID: 1001})
		if err != nil {
			t.Fatalf("config.yaml does not load: %v\n%s", err, data)
		}
		want := m
		if want.Address == "" {
			want.Address = config.DefaultMetricsAddress
		}
		if cfg.Metrics != want || (m == config.Metrics{}) == strings.Contains(string(data), "metrics:") {
			t.Errorf("spec metrics %+v: node config has %+v\n%s", m, cfg.Metrics, data)
		}
	}
}

// TestAutoScalingReachesTheNodeConfig: the spec's autoScaling section
// lands in every node's config.yaml as fleet.autoScaling, and a bad hook
// name is reported under the spec's field.
func TestAutoScalingReachesTheNodeConfig(t *testing.T) {
	s := freshCASpec(t)
	s.AutoScaling = config.AutoScaling{Group: "prod-etcd", LaunchHook: "etcd-launch", TerminateHook: "etcd-terminate",
		HeartbeatInterval: config.Duration(30 * time.Second), ReplacementWait: config.Duration(5 * time.Minute)}
	data, err := agentConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Source{Path: path, DefaultImageTag: "v3.7.3", UID: 1001})
	if err != nil {
		t.Fatalf("config.yaml does not load: %v\n%s", err, data)
	}
	if cfg.Fleet.AutoScaling != s.AutoScaling || cfg.Fleet.Notices != "imds" {
		t.Errorf("node config fleet %+v, want notices imds and %+v\n%s", cfg.Fleet, s.AutoScaling, data)
	}
	if f := specField("fleet.autoScaling.launchHook"); f != "autoScaling.launchHook" {
		t.Errorf("specField = %s", f)
	}
}

// TestZincatiFleetLockFragment: by default every node's Zincati reboots
// through its own agent's FleetLock (strategy fleet_lock, base_url on the
// agent's address); the address and group reach both Zincati and the agent;
// zincati-default leaves Zincati alone.
func TestZincatiFleetLockFragment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reboots SpecReboots
		want    []string // in the Zincati drop-in; nil: no drop-in
		agent   string   // in the agent's config.yaml
	}{
		{name: "default", want: []string{"[identity]\ngroup = \"default\"\n", "[updates]\nstrategy = \"fleet_lock\"\n", "[updates.fleet_lock]\nbase_url = \"http://127.0.0.1:2384/\"\n"}},
		{name: "own address and group", reboots: SpecReboots{Group: "etcd", FleetLock: config.FleetLock{Address: "127.0.0.1:9300"}},
			want: []string{"group = \"etcd\"", "base_url = \"http://127.0.0.1:9300/\""}, agent: "fleetLock:\n  address: 127.0.0.1:9300\n"},
		// The agents keep the window: Zincati's fleet_lock has none.
		{name: "maintenance window", reboots: SpecReboots{FleetLock: config.FleetLock{MaintenanceWindow: &config.MaintenanceWindow{
			Days: []string{"Sat", "Sun"}, StartTime: "22:30", Length: config.Duration(2 * time.Hour)}}},
			want:  []string{"[updates]\nstrategy = \"fleet_lock\"\n", "base_url = \"http://127.0.0.1:2384/\""},
			agent: "fleetLock:\n  maintenanceWindow:\n    days:\n      - Sat\n      - Sun\n    startTime: \"22:30\"\n    length: 2h"},
		{name: "zincati default", reboots: SpecReboots{Strategy: StrategyZincatiDefault}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := freshCASpec(t)
			s.Reboots = tc.reboots
			s.CA.AllowKeyInUserData = true
			res, err := Render(s, Options{DefaultImageTag: "v3.7.3"})
			if err != nil {
				t.Fatal(err)
			}
			c := parseIgnition(t, res.Ignition)
			var drop []byte
			for _, f := range c.Storage.Files {
				if f.Path == ZincatiConfigPath {
					drop = fileContents(t, f)
				}
			}
			if tc.want == nil && drop != nil {
				t.Errorf("%s written for %s:\n%s", ZincatiConfigPath, tc.name, drop)
			}
			if tc.want != nil && drop == nil {
				t.Fatalf("no %s in the Ignition config", ZincatiConfigPath)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(drop), w) {
					t.Errorf("Zincati drop-in lacks %q:\n%s", w, drop)
				}
			}
			if strings.Contains(string(drop), "window") || strings.Contains(string(drop), "periodic") {
				t.Errorf("Zincati drop-in has a window of its own:\n%s", drop)
			}
			agentCfg := string(fileContents(t, findFile(t, c, AgentConfigPath)))
			if tc.agent != "" && !strings.Contains(agentCfg, tc.agent) {
				t.Errorf("agent config lacks %q:\n%s", tc.agent, agentCfg)
			}
			if tc.agent == "" && strings.Contains(agentCfg, "fleetLock") {
				t.Errorf("agent config sets fleetLock though the spec does not:\n%s", agentCfg)
			}
		})
	}
}
