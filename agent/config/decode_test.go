package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// goTypeWords are what the yaml library's own messages name and an
// operator should never read: Go types and yaml's internal tags.
var goTypeWords = regexp.MustCompile(`config\.[A-Z]|\[\]|!!|\bint(64)?\b|\bfloat64\b|\bbool\b|unmarshal|not found in type|\bstruct\b`)

func problemLines(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// TestDecodeYAMLShapes: each kind of mistake, alone, is one problem with
// its YAML path, line, what was wanted and what the file has.
func TestDecodeYAMLShapes(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string
	}{
		// Unknown keys: the nearest key of the mapping, else the key where
		// it belongs, else the keys the mapping takes.
		{"typo", "cluster:\n  sise: 3\n", "cluster.sise (line 2): unknown key; did you mean size?"},
		{"swapped letters", "cluster:\n  szie: 3\n", "cluster.szie (line 2): unknown key; did you mean size?"},
		{"wrong case", "node:\n  datadir: /d\n", "node.datadir (line 2): unknown key; did you mean dataDir?"},
		{"two typos in a long key", "cluster:\n  deadMemberGrase: 1m\n", "cluster.deadMemberGrase (line 2): unknown key; did you mean deadMemberGrace?"},
		{"misplaced key", "cluster:\n  dataDir: /d\n", "cluster.dataDir (line 2): unknown key; did you mean node.dataDir?"},
		{"misplaced key in two places", "etcd:\n  caCert: /c\n", "etcd.caCert (line 2): unknown key; did you mean cluster.discovery.caCert or pki.caCert?"},
		{"top-level typo", "clustr:\n  size: 3\n", "clustr (line 1): unknown key; did you mean cluster?"},
		{"nothing near", "podman:\n  flavour: x\n", "podman.flavour (line 2): unknown key; podman takes socket, containerName, stopTimeout"},
		{"nothing near at the top", "zebra: 1\n", "zebra (line 1): unknown key; the top level takes cluster, node, pki, etcd, podman, agent, maintenance, metrics, backup, clients, fleet, fleetLock"},
		// Wrong types.
		{"integer", "cluster:\n  name: x\n  size: three\n", `cluster.size (line 3): want an integer, got "three"`},
		{"integer, not a fraction", "cluster:\n  size: 3.5\n", "cluster.size (line 2): want an integer, got 3.5"},
		{"quoted integer", "etcd:\n  clientPort: \"2379\"\n", `etcd.clientPort (line 2): want an integer, got "2379" (fix: remove the quotes)`},
		{"integer given a list", "etcd:\n  snapshotCount: [1]\n", "etcd.snapshotCount (line 2): want an integer, got a list"},
		{"duration", "podman:\n  stopTimeout: soon\n", `podman.stopTimeout (line 2): want a duration like 90s, 10m, 720h or 30d, got "soon"`},
		{"duration without unit", "podman:\n  stopTimeout: 30\n", "podman.stopTimeout (line 2): want a duration like 90s, 10m, 720h or 30d, got 30 (fix: add a unit (ms, s, m, h or d), e.g. 30s)"},
		{"negative duration", "agent:\n  healthInterval: -5s\n", `agent.healthInterval (line 2): want a duration like 90s, 10m, 720h or 30d, got "-5s"`},
		{"duration given a mapping", "cluster:\n  deadMemberGrace: {minutes: 10}\n", "cluster.deadMemberGrace (line 2): want a duration like 90s, 10m, 720h or 30d, got a mapping"},
		{"size", "etcd:\n  quotaBackendBytes: lots\n", `etcd.quotaBackendBytes (line 2): want a size like 512MiB, 4GiB or a byte count, got "lots"`},
		{"boolean", "metrics:\n  enabled: maybe\n", `metrics.enabled (line 2): want true or false, got "maybe"`},
		{"boolean given a number", "backup:\n  disabled: 1\n", "backup.disabled (line 2): want true or false, got 1"},
		{"quoted boolean", "metrics:\n  enabled: 'true'\n", `metrics.enabled (line 2): want true or false, got "true" (fix: remove the quotes)`},
		{"number", "maintenance:\n  disarmBelow: most\n", `maintenance.disarmBelow (line 2): want a number, got "most"`},
		{"string given a list", "cluster:\n  name: [a, b]\n", "cluster.name (line 2): want a string, got a list"},
		{"string given a mapping", "node:\n  ip:\n    v4: 10.0.0.1\n", "node.ip (line 2): want a string, got a mapping"},
		{"list given one value", "etcd:\n  extraFlags: --max-txn-ops=256\n", `etcd.extraFlags (line 2): want a list of strings, got "--max-txn-ops=256" (fix: write a list, even of one: [--max-txn-ops=256])`},
		{"list given a mapping", "cluster:\n  discovery:\n    endpoints: {a: b}\n", "cluster.discovery.endpoints (line 3): want a list of strings, got a mapping"},
		{"list element", "etcd:\n  extraFlags:\n    - --a=1\n    - {b: c}\n", "etcd.extraFlags[1] (line 4): want a string, got a mapping"},
		{"section given a value", "cluster: three\n", `cluster (line 1): want a mapping (keys: name, size, discovery, deadMemberGrace), got "three"`},
		{"section given a list", "backup:\n  retention: [24, 7]\n", "backup.retention (line 2): want a mapping (keys: hourly, daily, weekly), got a list"},
		{"whole file a list", "- a\n- b\n", "line 1: want a mapping (keys: cluster, node, pki, etcd, podman, agent, maintenance, metrics, backup, clients, fleet, fleetLock), got a list"},
		// The rest of what the yaml library refused.
		{"key set twice", "cluster:\n  size: 3\n  name: x\n  size: 5\n", "cluster.size (line 4): is set twice (first at line 2) (fix: keep one of them)"},
		{"key not a name", "cluster:\n  [a, b]: 1\n", "cluster (line 2): a key must be a plain name, not a list (fix: write the key as a name)"},
		{"merge of a value", "cluster:\n  <<: 3\n", `cluster.<< (line 2): want a mapping or a list of mappings to merge, got 3 (fix: merge an anchored mapping: <<: *name)`},
		{"syntax", "cluster:\n  size: 3\n  name: a: b\n", "line 3: not valid YAML: mapping values are not allowed in this context (fix: fix the YAML syntax: indent with spaces, put a space after each colon, close every quote and bracket)"},
		{"tab", "cluster:\n\tsize: 3\n", "line 2: not valid YAML: found character that cannot start any token (fix: fix the YAML syntax: indent with spaces, put a space after each colon, close every quote and bracket)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cfg Config
			_, ps := DecodeYAML([]byte(c.yaml), &cfg)
			got := problemLines(ps)
			if len(got) != 1 || got[0] != c.want {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), c.want)
			}
			if goTypeWords.MatchString(got[0]) {
				t.Errorf("%q names a Go type or a yaml tag", got[0])
			}
		})
	}
}

// TestDecodeYAMLAllAtOnce: several mistakes in one file are all reported,
// in file order, and every good value around them is still decoded.
func TestDecodeYAMLAllAtOnce(t *testing.T) {
	y := `cluster:
  name: prod
  sise: 3
  size: three
  discovery:
    endpoints: https://10.0.0.10:2379
    token: abc
node:
  identity: static
  ip: 10.0.1.5
podman:
  stopTimeout: soon
metrics:
  enabled: maybe
  address: 127.0.0.1:2390
`
	var cfg Config
	lines, ps := DecodeYAML([]byte(y), &cfg)
	want := []string{
		"cluster.sise (line 3): unknown key; did you mean size?",
		`cluster.size (line 4): want an integer, got "three"`,
		`cluster.discovery.endpoints (line 6): want a list of strings, got "https://10.0.0.10:2379" (fix: write a list, even of one: [https://10.0.0.10:2379])`,
		`podman.stopTimeout (line 12): want a duration like 90s, 10m, 720h or 30d, got "soon"`,
		`metrics.enabled (line 14): want true or false, got "maybe"`,
	}
	if got := problemLines(ps); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if cfg.Cluster.Name != "prod" || cfg.Cluster.Discovery.Token != "abc" || cfg.Node.IP != "10.0.1.5" || cfg.Metrics.Address != "127.0.0.1:2390" {
		t.Errorf("the good values around the mistakes were not decoded: %+v", cfg)
	}
	for path, line := range map[string]int{"cluster": 1, "cluster.name": 2, "cluster.discovery.token": 7, "node.ip": 10, "metrics.address": 15} {
		if lines[path] != line {
			t.Errorf("lines[%s] = %d, want %d", path, lines[path], line)
		}
	}
}

// TestDecodeYAMLAsYAMLDoes: a valid file decodes to exactly what the yaml
// library's strict decoder makes of it: anchors, aliases, merge keys,
// nulls, flow style, YAML 1.1 booleans and the units included.
func TestDecodeYAMLAsYAMLDoes(t *testing.T) {
	docs := map[string]string{
		// The README's short example and docs/configuration.md's
		// complete one: the first YAML block after their heading.
		"README example":                docExample(t, "../../README.md", "## Configuration\n"),
		"docs/configuration.md example": docExample(t, "../../docs/configuration.md", "## The file\n"),
		"anchors and merges": `cluster:
  discovery: &disc
    static: a=https://10.0.0.1:2380
  size: 5
pki: &times
  validity: 90d
  renewBefore: 9d
backup:
  retention: {hourly: -1, daily: 7}
  s3:
    <<: [{bucket: acme, region: eu-west-1}, {prefix: x/}]
    region: us-east-1
etcd:
  extraFlags: [--max-txn-ops=256, ~]
  quotaBackendBytes: 2147483648
  snapshotCount: 0x10
node:
  identity:
  name: ~
metrics:
  enabled: yes
`,
		"empty":         "",
		"comments only": "# nothing set\n",
	}
	for name, y := range docs {
		t.Run(name, func(t *testing.T) {
			var ours, theirs Config
			if _, ps := DecodeYAML([]byte(y), &ours); len(ps) > 0 {
				t.Fatalf("problems: %v", problemLines(ps))
			}
			dec := yaml.NewDecoder(bytes.NewReader([]byte(y)))
			dec.KnownFields(true)
			if err := dec.Decode(&theirs); err != nil && err.Error() != "EOF" {
				t.Fatalf("yaml: %v", err)
			}
			if !reflect.DeepEqual(ours, theirs) {
				t.Errorf("decoded\n%+v\nyaml decodes\n%+v", ours, theirs)
			}
		})
	}
}

// TestDecodeYAMLOtherShapes: maps, pointers and inline structs, which the
// agent's config does not use but a caller's type (the butane spec) may.
func TestDecodeYAMLOtherShapes(t *testing.T) {
	type inner struct {
		Port int `yaml:"port"`
	}
	type doc struct {
		Labels map[string]int `yaml:"labels"`
		Ptr    *inner         `yaml:"ptr"`
		inner  `yaml:",inline"`
		Any    any    `yaml:"any"`
		Skip   string `yaml:"-"`
		Plain  string
		hidden string
	}
	var d doc
	_, ps := DecodeYAML([]byte("labels: {a: 1, b: two}\nptr: {port: 5, prot: 6}\nport: x\nany: {k: [1]}\nplain: p\nhidden: h\nskip: s\n"), &d)
	want := []string{
		`labels.b (line 1): want an integer, got "two"`,
		"ptr.prot (line 2): unknown key; did you mean port?",
		`port (line 3): want an integer, got "x"`,
		"hidden (line 6): unknown key; the top level takes labels, ptr, port, any, plain",
		"skip (line 7): unknown key; the top level takes labels, ptr, port, any, plain",
	}
	if got := problemLines(ps); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d.Labels["a"] != 1 || d.Ptr == nil || d.Ptr.Port != 5 || d.Plain != "p" || d.Any == nil || d.hidden != "" || d.Skip != "" {
		t.Errorf("decoded %+v", d)
	}
	// An alias inside its own anchor is refused, not followed forever.
	var loop struct {
		A [][]string `yaml:"a"`
	}
	_, ps = DecodeYAML([]byte("a: &x [*x]\n"), &loop)
	if got := problemLines(ps); len(got) != 1 || got[0] != "a[0][0] (line 1): the alias *x refers to a value that contains it (fix: copy the value instead of the alias)" {
		t.Errorf("self-referencing alias: %q", got)
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"size", "size", 0}, {"sise", "size", 1}, {"szie", "size", 1}, {"siz", "size", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if got := distance(c.a, c.b); got != c.d {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

// TestProblemsCarryTheirLine: the checks after decoding (Validate, the
// offline checks) name the line that sets the field, or the override that
// set it instead, and everything comes in file order with the decode
// problems, a field that did not decode not checked again as its default.
func TestProblemsCarryTheirLine(t *testing.T) {
	dir := t.TempDir()
	y := `cluster:
  size: 11
  discovery:
    static: etcd-a=https://10.0.0.1:2380
node:
  identity: static
  ip: 10.0.0.300
  dataDir: relative
pki:
  validity: forever
  caKey: ` + filepath.Join(dir, "missing.key") + `
etcd:
  runtime: embedded
  clientPort: 99999
`
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Check(Source{
		Path: path,
		Env: func(k string) (string, bool) {
			return map[string]string{"ETCD_AGENT_LOG_LEVEL": "loud"}[k], k == "ETCD_AGENT_LOG_LEVEL"
		},
		Flags: map[string]string{"etcd.runtime": "docker"},
	}, CheckOptions{})
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v", err)
	}
	if cerr.File != path {
		t.Errorf("File = %q, want %q", cerr.File, path)
	}
	want := []string{
		`cluster.size (line 2) = "11": more than 9 voters`,
		`node.ip (line 7) = "10.0.0.300": is not an IP address`,
		`node.dataDir (line 8) = "relative": must be an absolute path`,
		`pki.validity (line 10): want a duration like 90s, 10m, 720h or 30d, got "forever"`,
		`etcd.clientPort (line 14) = "99999": is not a TCP port`,
		`etcd.runtime (from the command line) = "docker": must be "podman" or "embedded"`,
		`agent.logLevel (from ETCD_AGENT_LOG_LEVEL) = "loud": is not a log level`,
		`backup.dir = "snapshots": must be an absolute path`, // beside node.dataDir by default: not in the file
	}
	got := problemLines(cerr.Problems)
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n%s\nwant it to start\n%s", i, got[i], want[i])
		}
	}
}

// docExample is the first YAML block after heading in the doc at path.
func docExample(t *testing.T, path, heading string) string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), heading)
	if !ok {
		t.Fatalf("%s has no %q heading", path, strings.TrimSpace(heading))
	}
	_, block, ok := strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatalf("%s has no YAML block after %q", path, strings.TrimSpace(heading))
	}
	block, _, _ = strings.Cut(block, "```")
	return block
}
