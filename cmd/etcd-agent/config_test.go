package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/butane"
)

// checkFixture writes a CA and a config (static identity, embedded
// runtime, everything under a temp dir) with extra YAML appended to etcd:.
func checkFixture(t *testing.T, etcdExtra string) (cfgPath, caKey string) {
	t.Helper()
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, nil, "ca", "init", "--dir", filepath.Join(dir, "ca")); code != 0 {
		t.Fatalf("ca init: %s", errOut)
	}
	caKey = filepath.Join(dir, "ca", "ca.key")
	y := fmt.Sprintf(`cluster:
  name: test
  discovery:
    static: etcd-10-0-1-5=https://10.0.1.5:2380,etcd-10-0-1-6=https://10.0.1.6:2380,etcd-10-0-1-7=https://10.0.1.7:2380
node:
  identity: static
  ip: 10.0.1.5
  dataDir: %[1]s/data
pki:
  caCert: %[1]s/ca/ca.crt
  caKey: %[1]s/ca/ca.key
  dir: %[1]s/pki
agent:
  statusFile: %[1]s/status.json
etcd:
  runtime: embedded
%[2]s`, dir, etcdExtra)
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, caKey
}

func TestConfigCheckOK(t *testing.T) {
	path, _ := checkFixture(t, "  snapshotCount: 50000\n  heartbeatInterval: 200ms\n  electionTimeout: 2s\n  extraFlags: [--max-txn-ops=256]\n")
	code, out, errOut := runCLI(t, nil, "config", "check", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"configuration OK: " + path, "test, 3 voters", "static, 3 founding peers", "member etcd-10-0-1-5 at 10.0.1.5", "embedded", "/data", "(1 extra)"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// IMDS identity: checked with a placeholder IP, and said so.
	code, out, errOut = runCLI(t, map[string]string{"ETCD_AGENT_IDENTITY": "imds"}, "config", "check", "--config", path)
	if code != 0 || !strings.Contains(out, "placeholder IP") {
		t.Errorf("imds: exit %d\n%s%s", code, out, errOut)
	}
}

// TestConfigCheckReportsAllProblems: config, member spec and file problems
// are listed together, exit 78.
func TestConfigCheckReportsAllProblems(t *testing.T) {
	path, caKey := checkFixture(t, "  heartbeatInterval: 300ms\n  extraFlags: [--snapshot-count=50000, --max-txn-ops=lots]\n")
	if err := os.Chmod(caKey, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, map[string]string{"ETCD_AGENT_LOG_LEVEL": "loud"}, "config", "check", "--config", path)
	if code != config.ExitCode {
		t.Errorf("exit %d, want %d", code, config.ExitCode)
	}
	for _, want := range []string{
		"agent.logLevel (from ETCD_AGENT_LOG_LEVEL) = \"loud\"",
		"etcd.electionTimeout", "at least as 5 times as etcd.heartbeatInterval",
		"etcd.extraFlags[0] (line 18) = \"--snapshot-count=50000\"", "set etcd.snapshotCount: 50000",
		"etcd.extraFlags[1] (line 18) = \"--max-txn-ops=lots\": --max-txn-ops=lots: want a whole number (0 or more), got \"lots\"",
		"pki.caKey", "chmod 600 " + caKey,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("output lacks %q:\n%s", want, errOut)
		}
	}
	// --files=false checks a config meant for another machine.
	if err := os.Chmod(caKey, 0o600); err != nil {
		t.Fatal(err)
	}
	path2, caKey2 := checkFixture(t, "")
	_ = os.Remove(caKey2)
	if code, _, errOut := runCLI(t, nil, "config", "check", "--config", path2); code != config.ExitCode || !strings.Contains(errOut, "pki.caKey") {
		t.Errorf("missing CA key: exit %d %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, nil, "config", "check", "--files=false", "--config", path2); code != 0 || !strings.Contains(out, "not checked") {
		t.Errorf("--files=false: exit %d %s%s", code, out, errOut)
	}
}

// countingListener accepts TCP connections and counts them.
func countingListener(t *testing.T) (addr string, count *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	count = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			count.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), count
}

// TestRunRefusesBeforeTouchingTheNetwork: `run` with a refused extra flag,
// or a CA key readable by others, exits 78 at once: neither IMDS nor
// discovery is contacted, so no discovery slot is taken.
func TestRunRefusesBeforeTouchingTheNetwork(t *testing.T) {
	disc, discConns := countingListener(t)
	imds, imdsConns := countingListener(t)
	for _, tc := range []struct {
		name, extra, want string
		openKey           bool
	}{
		{"refused extra flag", "  extraFlags: [--snapshot-count=50000]\n", "set etcd.snapshotCount: 50000", false},
		{"CA key readable by others", "", "chmod 600", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, caKey := checkFixture(t, tc.extra)
			if tc.openKey {
				if err := os.Chmod(caKey, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data, _ := os.ReadFile(path)
			data = []byte(strings.Replace(string(data),
				"    static: etcd-10-0-1-5=https://10.0.1.5:2380,etcd-10-0-1-6=https://10.0.1.6:2380,etcd-10-0-1-7=https://10.0.1.7:2380\n",
				"    endpoints: [https://"+disc+"]\n    token: tok\n", 1))
			data = []byte(strings.Replace(string(data), "  identity: static\n  ip: 10.0.1.5\n", "  identity: imds\n  imdsEndpoint: http://"+imds+"\n", 1))
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			code, _, errOut := runCLI(t, nil, "run", "--config", path)
			if code != config.ExitCode || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want %d mentioning %q:\n%s", code, config.ExitCode, tc.want, errOut)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			time.Sleep(50 * time.Millisecond)
			if n, m := discConns.Load(), imdsConns.Load(); n != 0 || m != 0 {
				t.Errorf("%d connections to discovery, %d to IMDS; want none", n, m)
			}
		})
	}
}

// docBlock is one ```yaml block of a Markdown file.
type docBlock struct {
	file string
	line int
	text string
}

func yamlBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docBlock
	var cur *docBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = &docBlock{file: path, line: n}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return out
}

// TestDocExamplesPassConfigCheck: every YAML example in README.md and docs/
// that is an agent config, or a cluster spec that renders one, passes the
// checks of `config check` (files excepted: they are on the node).
func TestDocExamplesPassConfigCheck(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append([]string{"../../README.md"}, files...)
	checked := map[string]int{} // examples checked per file
	for _, f := range files {
		for _, b := range yamlBlocks(t, f) {
			var top map[string]any
			if err := yaml.Unmarshal([]byte(b.text), &top); err != nil {
				t.Errorf("%s:%d: YAML example does not parse: %v", b.file, b.line, err)
				continue
			}
			_, hasCluster := top["cluster"]
			_, hasNode := top["node"]
			if !hasCluster && !hasNode {
				continue
			}
			text := b.text
			if _, isSpec := top["ca"]; isSpec {
				var err error
				if text, err = agentConfigOfSpec(b.text); err != nil {
					t.Errorf("%s:%d: cluster spec example: %v", b.file, b.line, err)
					continue
				}
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			checked[filepath.Base(b.file)]++
			_, _, err := config.Check(config.Source{Path: path, DefaultImageTag: defaultEtcdVersion, UID: 1000}, config.CheckOptions{})
			if err != nil {
				t.Errorf("%s:%d: YAML example fails `config check`:\n%v", b.file, b.line, err)
			}
		}
	}
	// The agent configs the docs show in full: the README's short one,
	// docs/configuration.md's complete one, the deploy guide's spec.
	for _, f := range []string{"README.md", "configuration.md", "deploy-aws.md"} {
		if checked[f] == 0 {
			t.Errorf("checked no example in %s (checked: %v)", f, checked)
		}
	}
}

// agentConfigOfSpec is the agent config a cluster spec (docs/deploy-aws.md)
// gives its nodes: the part of it `etcd-agent butane` copies into
// config.yaml.
func agentConfigOfSpec(text string) (string, error) {
	s, err := butane.ParseSpec([]byte(text), "/nonexistent", "example")
	if err != nil {
		return "", err
	}
	var d struct {
		Cluster struct {
			Name      string               `yaml:"name,omitempty"`
			Size      int                  `yaml:"size,omitempty"`
			Discovery butane.SpecDiscovery `yaml:"discovery"`
		} `yaml:"cluster"`
		Etcd struct {
			Image             string   `yaml:"image,omitempty"`
			QuotaBackendBytes string   `yaml:"quotaBackendBytes,omitempty"`
			ExtraFlags        []string `yaml:"extraFlags,omitempty"`
		} `yaml:"etcd"`
		Backup  butane.SpecBackup  `yaml:"backup,omitempty"`
		Clients butane.SpecClients `yaml:"clients,omitempty"`
		Fleet   struct {
			AutoScaling config.AutoScaling `yaml:"autoScaling,omitempty"`
		} `yaml:"fleet,omitempty"`
	}
	d.Cluster.Name, d.Cluster.Size, d.Cluster.Discovery = s.Cluster.Name, s.Cluster.Size, s.Discovery
	d.Etcd.Image, d.Etcd.QuotaBackendBytes, d.Etcd.ExtraFlags = s.Etcd.Image, s.Etcd.QuotaBackendBytes, s.Etcd.ExtraFlags
	d.Backup, d.Clients = s.Backup, s.Clients
	d.Fleet.AutoScaling = s.AutoScaling
	out, err := yaml.Marshal(d)
	return string(out), err
}

// unwritableDir makes a directory the agent's user cannot create entries
// in: mode 0500, and for root, whom modes do not stop, the immutable
// attribute (chattr +i), undone at cleanup.
func unwritableDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 {
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s (root ignores modes): %v %s", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
}

// TestConfigZoo: a typo, three wrong types, a missing CA and an unwritable
// data dir in one file are all reported by one `config check`, in file
// order, each with its YAML path and line, and none names a Go type.
func TestConfigZoo(t *testing.T) {
	dir := t.TempDir()
	unwritableDir(t, filepath.Join(dir, "ro"))
	zoo := `cluster:
  name: zoo
  sise: 3
  size: three
  discovery:
    static: etcd-10-0-1-5=https://10.0.1.5:2380
node:
  identity: static
  ip: 10.0.1.5
  dataDir: DIR/ro/data
pki:
  caCert: DIR/ca/ca.crt
  caKey: DIR/ca/ca.key
  dir: DIR/pki
agent:
  statusFile: DIR/status.json
etcd:
  runtime: embedded
  extraFlags: --max-txn-ops=256
metrics:
  enabled: maybe
`
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(zoo, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "config", "check", "--config", path)
	want := `etcd-agent config check: invalid configuration in DIR/config.yaml (7 problems):
  - cluster.sise (line 3): unknown key; did you mean size?
  - cluster.size (line 4): want an integer, got "three"
  - node.dataDir (line 10) = "DIR/ro/data": does not exist and cannot be created: DIR/ro is not writable by the agent's user (uid UID) (fix: create it owned by the agent's user: install -d -m 0700 -o <agent user> DIR/ro/data (or chown -R <agent user> DIR/ro/data))
  - pki.caCert (line 12) = "DIR/ca/ca.crt": does not exist (fix: install the cluster CA certificate there (mode 0644))
  - pki.caKey (line 13) = "DIR/ca/ca.key": does not exist (fix: install the cluster CA key there (` + "`etcd-agent ca init --dir DIR`" + ` creates a CA), owned by the agent's user (uid UID), mode 0600)
  - etcd.extraFlags (line 19): want a list of strings, got "--max-txn-ops=256" (fix: write a list, even of one: [--max-txn-ops=256])
  - metrics.enabled (line 21): want true or false, got "maybe"
`
	// The fix text names `ca init --dir DIR` literally: keep that DIR.
	got := strings.ReplaceAll(errOut, dir, "DIR")
	got = strings.ReplaceAll(got, fmt.Sprintf("(uid %d)", os.Getuid()), "(uid UID)")
	if code != config.ExitCode || out != "" || got != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d and:\n%s", code, out, got, config.ExitCode, want)
	}
	// docs/configuration.md quotes this output for a zoo.yaml in /srv/zoo, uid 1001.
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	quoted := strings.NewReplacer("DIR/config.yaml", "zoo.yaml", "DIR/", "/srv/zoo/", "(uid UID)", "(uid 1001)").Replace(want)
	if !strings.Contains(string(doc), "$ etcd-agent config check --config zoo.yaml\n"+quoted+"$ echo $?\n78\n") {
		t.Errorf("docs/configuration.md does not quote the zoo's output as it is now:\n%s", quoted)
	}
	if m := regexp.MustCompile(`config\.[A-Z]|\[\]|!!|\bint(64)?\b|\bbool\b|unmarshal`).FindString(got); m != "" {
		t.Errorf("the output names a Go type or a yaml tag: %q", m)
	}
}
