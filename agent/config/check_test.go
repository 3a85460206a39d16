package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func check(t *testing.T, yaml string, opts CheckOptions) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Check(Source{Path: path, DefaultImageTag: "v3.7.3", UID: 1234}, opts)
	return cfg, err
}

func problems(t *testing.T, err error) []Problem {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("want *config.Error, got %v", err)
	}
	return cerr.Problems
}

// TestTuningFields: the Raft tuning settings map onto the member spec and
// follow etcd's own rules.
func TestTuningFields(t *testing.T) {
	cfg, err := check(t, minimal+"etcd:\n  snapshotCount: 50000\n  heartbeatInterval: 200ms\n  electionTimeout: 2s\n", CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.MemberSpec("n1", netip.MustParseAddr("10.0.1.5"))
	if s.SnapshotCount != 50000 || s.HeartbeatMs != 200 || s.ElectionMs != 2000 {
		t.Errorf("spec tuning = %d/%d/%d", s.SnapshotCount, s.HeartbeatMs, s.ElectionMs)
	}
	cfg, err = check(t, minimal, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.MemberSpec("n1", netip.MustParseAddr("10.0.1.5")); s.SnapshotCount != 0 || s.HeartbeatMs != 0 || s.ElectionMs != 0 {
		t.Errorf("defaults are not etcd's: %+v", s)
	}
	bad := []struct{ yaml, field, want string }{
		{"  snapshotCount: -1\n", "etcd.snapshotCount", "must be positive"},
		{"  heartbeatInterval: 500us\n", "etcd.heartbeatInterval", "at least 1ms"},
		{"  heartbeatInterval: 1500us\n", "etcd.heartbeatInterval", "whole milliseconds"},
		{"  heartbeatInterval: 300ms\n", "etcd.electionTimeout", "should be at least as 5 times as etcd.heartbeatInterval"},
		{"  heartbeatInterval: 100ms\n  electionTimeout: 400ms\n", "etcd.electionTimeout", "at least as 5 times"},
		{"  electionTimeout: 60s\n", "etcd.electionTimeout", "more than 50s"},
	}
	for _, b := range bad {
		_, err := check(t, minimal+"etcd:\n"+b.yaml, CheckOptions{})
		if err == nil || !strings.Contains(err.Error(), b.field) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v, want %s: %s", b.yaml, err, b.field, b.want)
		}
	}
}

// TestCheckRefusesExtraFlags: every refused extra flag is its own problem,
// naming the entry, the value and the config field to use instead, and is
// reported together with the config's other problems.
func TestCheckRefusesExtraFlags(t *testing.T) {
	yaml := minimal + "node:\n  identity: gce\netcd:\n  extraFlags: [--snapshot-count=50000, --heartbeat-interval=200, --max-txn-ops=lots, --listen-client-urls=http://0.0.0.0:2379, --no-such-flag=1, --max-txn-ops=256]\n"
	_, err := check(t, yaml, CheckOptions{})
	ps := problems(t, err)
	want := map[string]string{
		"node.identity":      "gce",
		"etcd.extraFlags[0]": "set etcd.snapshotCount: 50000",
		"etcd.extraFlags[1]": "set etcd.heartbeatInterval: 200ms",
		"etcd.extraFlags[2]": "--max-txn-ops=lots",
		"etcd.extraFlags[3]": "sets this flag itself",
		"etcd.extraFlags[4]": "not an etcd server setting",
	}
	got := map[string]string{}
	for _, p := range ps {
		got[p.Field] += p.String()
	}
	for f, w := range want {
		if !strings.Contains(got[f], w) {
			t.Errorf("%s: %q, want it to mention %q", f, got[f], w)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(ps), len(want), err)
	}
	// Load alone (status, leave) does not refuse extra flags.
	path := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(path, []byte(minimal+"etcd:\n  extraFlags: [--snapshot-count=5]\n"), 0o644)
	if _, _, err := Load(Source{Path: path}); err != nil {
		t.Errorf("Load: %v", err)
	}
}

// TestCheckRefusesStrictReconfigOff: the agent's membership changes rely on
// etcd refusing a change that would cost quorum; no spelling of turning that
// check off gets through, and the problem names the entry and the fix.
func TestCheckRefusesStrictReconfigOff(t *testing.T) {
	for _, tc := range []struct{ name, flag string }{
		{"equals", "--strict-reconfig-check=false"},
		{"zero", "--strict-reconfig-check=0"},
		{"upper case", "--strict-reconfig-check=FALSE"},
		{"space", "--strict-reconfig-check false"},
		{"one dash", "-strict-reconfig-check=false"},
		{"one dash space", "-strict-reconfig-check  f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := check(t, minimal+"etcd:\n  extraFlags: ['--max-txn-ops=256', '"+tc.flag+"']\n", CheckOptions{})
			ps := problems(t, err)
			if len(ps) != 1 {
				t.Fatalf("%d problems, want 1: %v", len(ps), err)
			}
			p := ps[0]
			if p.Field != "etcd.extraFlags[1]" || p.Value != tc.flag ||
				!strings.Contains(p.Problem, "turns off etcd's strict reconfiguration check") ||
				!strings.Contains(p.Fix, "remove it") {
				t.Errorf("problem = %s", p)
			}
		})
	}
	for _, ok := range []string{"--strict-reconfig-check", "--strict-reconfig-check=true"} {
		if _, err := check(t, minimal+"etcd:\n  extraFlags: ['"+ok+"']\n", CheckOptions{}); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

func TestOfflineIdentity(t *testing.T) {
	cfg, err := check(t, minimal, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if name, ip, ph := cfg.OfflineIdentity(); !ph || ip != PlaceholderIP || name != "etcd-192-0-2-10" {
		t.Errorf("imds: %s %s %v", name, ip, ph)
	}
	cfg, err = check(t, minimal+"node:\n  identity: static\n  ip: 10.0.1.5\n", CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if name, ip, ph := cfg.OfflineIdentity(); ph || ip.String() != "10.0.1.5" || name != "etcd-10-0-1-5" {
		t.Errorf("static: %s %s %v", name, ip, ph)
	}
}

// TestCheckFiles: the CA key's permissions and the dirs the agent writes are
// config errors with the fix.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.crt")
	for _, f := range []string{key, crt} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	yaml := minimal + "pki:\n  caKey: " + key + "\n  caCert: " + crt + "\n  dir: " + filepath.Join(dir, "pki") + "\nnode:\n  dataDir: " + filepath.Join(ro, "data") + "\n"
	_, err := check(t, yaml, CheckOptions{Files: true})
	if err == nil || !strings.Contains(err.Error(), "pki.caKey") || !strings.Contains(err.Error(), "chmod 600 "+key) {
		t.Errorf("0644 CA key: %v", err)
	}
	if os.Getuid() != 0 && (err == nil || !strings.Contains(err.Error(), "node.dataDir")) {
		t.Errorf("data dir under a read-only dir: %v", err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := check(t, yaml, CheckOptions{Files: true}); err != nil {
		t.Errorf("good files: %v", err)
	}
	if _, err := check(t, minimal+"pki:\n  caKey: /nonexistent/ca.key\n", CheckOptions{}); err != nil {
		t.Errorf("files checked without Files: %v", err)
	}
}
