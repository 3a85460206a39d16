package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// everything sets every key to a value other than its default.
const everything = `
cluster:
  name: prod-etcd
  size: 5
  deadMemberGrace: 90s
  discovery:
    static: etcd-10-0-1-5=https://10.0.1.5:2380,etcd-10-0-1-6=https://10.0.1.6:2380
    caCert: /etc/disc/ca.crt
    cert: /etc/disc/c.crt
    key: /etc/disc/c.key
node:
  identity: static
  ip: 10.0.1.5
  name: node-a
  hostname: node-a.example
  imdsEndpoint: http://169.254.169.254
  dataDir: /srv/etcd/data
pki:
  caCert: /srv/ca.crt
  caKey: /srv/ca.key
  dir: /srv/pki
  validity: 90d
  renewBefore: 36h
etcd:
  runtime: podman
  image: example.com/etcd:v3.7.3
  clientPort: 12379
  peerPort: 12380
  quotaBackendBytes: 6442450944
  autoCompactionRetention: 1h30m
  snapshotCount: 50000
  heartbeatInterval: 150ms
  electionTimeout: 1500ms
  extraFlags: [--log-level=warn, --experimental-warning-apply-duration=200ms]
podman:
  socket: unix:///run/podman/podman.sock
  containerName: etcd-main
  stopTimeout: 45s
agent:
  statusFile: /run/ea/status.json
  logLevel: debug
  logFormat: json
  healthInterval: 2s
maintenance:
  interval: 20s
  defragFreeRatio: 0.25
  defragFreeBytes: 1000000
  defragPace: 2m
  disarmBelow: 0.8
metrics:
  enabled: true
  address: 10.0.1.5:9100
backup:
  interval: 1h
  verifyInterval: 12h
  dir: /srv/snapshots
  retention:
    hourly: 12
    daily: -1
    weekly: 8
  s3:
    bucket: etcd-backups
    prefix: prod/
    region: eu-west-1
`

func TestMarshalRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		yaml string // loaded first; its Config is what is marshalled
	}{
		{"minimal, every default written out", minimal},
		{"every key set", everything},
		{"local node", `
cluster:
  name: local
  size: 3
  deadMemberGrace: 3s
  discovery: {endpoints: ["https://127.0.0.1:23790"], token: tok}
node: {identity: static, ip: 127.0.0.11, dataDir: /l/node1/data}
pki: {caCert: /l/ca/ca.crt, caKey: /l/ca/ca.key, dir: /l/node1/pki}
etcd: {runtime: embedded, quotaBackendBytes: 2GiB}
agent: {statusFile: /l/node1/status.json, healthInterval: 200ms}
backup: {disabled: true}
`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"XDG_RUNTIME_DIR": "/run/user/1001"}
			want, _, err := load(t, c.yaml, env, nil)
			if err != nil {
				t.Fatal(err)
			}
			data, err := Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := load(t, string(data), env, nil)
			if err != nil {
				t.Fatalf("%v\nmarshalled:\n%s", err, data)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("loaded back:\n%+v\nwant:\n%+v\nmarshalled:\n%s", got, want, data)
			}
		})
	}
}

// TestMarshalWritesOnlyWhatIsSet: a node file built from the types holds
// the keys that were set, in the file's units, and loads as if the
// defaults had been applied to it.
func TestMarshalWritesOnlyWhatIsSet(t *testing.T) {
	in := &Config{
		Cluster: Cluster{Name: "test", Size: 3, DeadMemberGrace: Duration(3 * time.Second),
			Discovery: Discovery{Endpoints: []string{"https://127.100.4.0:40001"}, Token: "tok"}},
		Node:   Node{Identity: "static", IP: "127.100.4.1", DataDir: "/t/node1/data"},
		PKI:    PKI{CACert: "/t/ca/ca.crt", CAKey: "/t/ca/ca.key", Dir: "/t/node1/pki"},
		Etcd:   Etcd{Runtime: "embedded", QuotaBackendBytes: 64 << 20},
		Agent:  Agent{StatusFile: "/t/node1/status.json", HealthInterval: Duration(200 * time.Millisecond)},
		Backup: Backup{Disabled: true},
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := WriteFile(path, "Written by a test.", in); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const want = `# Written by a test.
cluster:
  name: test
  size: 3
  discovery:
    endpoints:
      - https://127.100.4.0:40001
    token: tok
  deadMemberGrace: 3s
node:
  identity: static
  ip: 127.100.4.1
  dataDir: /t/node1/data
pki:
  caCert: /t/ca/ca.crt
  caKey: /t/ca/ca.key
  dir: /t/node1/pki
etcd:
  runtime: embedded
  quotaBackendBytes: 64MiB
agent:
  statusFile: /t/node1/status.json
  healthInterval: 200ms
backup:
  disabled: true
`
	if string(data) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", data, want)
	}
	got, _, err := Load(Source{Path: path, DefaultImageTag: "v3.7.3", UID: 1234})
	if err != nil {
		t.Fatal(err)
	}
	in.applyDefaults("v3.7.3", 1234, func(string) (string, bool) { return "", false })
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("loaded:\n%+v\nwant the input with defaults:\n%+v", got, in)
	}
}

func TestDurationAndSizeText(t *testing.T) {
	durations := map[time.Duration]string{
		200 * time.Millisecond: "200ms", 3 * time.Second: "3s", 90 * time.Second: "1m30s", 10 * time.Minute: "10m",
		time.Hour: "1h", 90 * time.Minute: "1h30m", 36 * time.Hour: "36h", 48 * time.Hour: "2d", 365 * 24 * time.Hour: "365d",
		time.Hour + time.Second: "1h0m1s",
	}
	for d, want := range durations {
		out, err := yaml.Marshal(Duration(d))
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("Duration(%s) marshals to %q (%v), want %q", d, out, err, want)
			continue
		}
		if back, err := ParseDuration(want); err != nil || back.D() != d {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", want, back, err, d)
		}
	}
	sizes := map[int64]string{64 << 20: "64MiB", 2 << 30: "2GiB", 1 << 40: "1TiB", 3 << 10: "3KiB", 1536: "1536", 1000000: "1000000", 1: "1"}
	for z, want := range sizes {
		out, err := yaml.Marshal(Size(z))
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("Size(%d) marshals to %q (%v), want %q", z, out, err, want)
			continue
		}
		if back, err := ParseSize(want); err != nil || int64(back) != z {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", want, back, err, z)
		}
	}
}
