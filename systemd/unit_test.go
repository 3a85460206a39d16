package systemd_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/systemd"
)

// unitKeys parses a unit file into "Section.Key" -> values, in order.
func unitKeys(t *testing.T, unit []byte) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("malformed unit line %q", line)
			}
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

func TestUnitFileDefaults(t *testing.T) {
	unit, err := systemd.UnitFile(systemd.UnitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := unitKeys(t, unit)
	want := map[string]string{
		"Unit.Wants":                       "network-online.target",
		"Unit.StartLimitIntervalSec":       "10min",
		"Unit.StartLimitBurst":             "5",
		"Service.Type":                     "notify",
		"Service.NotifyAccess":             "main",
		"Service.User":                     "etcd-user",
		"Service.Group":                    "etcd-user",
		"Service.ExecStart":                "/usr/local/bin/etcd-agent run --config /etc/etcd-agent/config.yaml",
		"Service.Restart":                  "on-failure",
		"Service.RestartSec":               "5s",
		"Service.RestartPreventExitStatus": "78",
		"Service.TimeoutStartSec":          "infinity",
		"Service.TimeoutStopSec":           "90s",
		"Service.WatchdogSec":              "60s",
		"Service.KillMode":                 "mixed",
		"Service.RuntimeDirectory":         "etcd-agent",
		"Service.RuntimeDirectoryMode":     "0755",
		"Service.StateDirectory":           "etcd-agent",
		"Service.LimitNOFILE":              "65536",
		"Service.NoNewPrivileges":          "yes",
		"Service.ProtectSystem":            "full",
		"Install.Also":                     "etcd-agent-start.service",
	}
	for k, v := range want {
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("%s = %q, want exactly [%q]", k, vs, v)
		}
	}
	if vs, ok := got["Service.Environment"]; ok {
		t.Errorf("Environment = %q without a UID, want none", vs)
	}
}

// TestUnitFileDoesNotHoldUpMultiUser: a node waiting in discovery for hours
// must not keep multi-user.target (and all ordered after it) waiting, which
// the default dependencies would do (test/node shows it on a booted node):
// they are replaced by the same dependencies without that ordering.
func TestUnitFileDoesNotHoldUpMultiUser(t *testing.T) {
	unit, err := systemd.UnitFile(systemd.UnitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := unitKeys(t, unit)
	want := map[string][]string{
		"Unit.DefaultDependencies": {"no"},
		"Unit.Requires":            {"sysinit.target"},
		"Unit.After":               {"network-online.target", "sysinit.target basic.target"},
		"Unit.Conflicts":           {"shutdown.target"},
		"Unit.Before":              {"shutdown.target"},
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if vs, ok := got["Install.WantedBy"]; ok {
		t.Errorf("WantedBy = %q: the agent must not be part of the boot transaction (etcd-agent-start.service starts it)", vs)
	}
}

// TestStartUnitFile: the enabled unit's start job ends at once (Type=exec) and
// its process queues the agent's start only after the boot completed, so a
// node waiting for READY=1 for hours still completes its boot (test/node
// checks it on a booted node).
func TestStartUnitFile(t *testing.T) {
	unit, err := systemd.StartUnitFile()
	if err != nil {
		t.Fatal(err)
	}
	got := unitKeys(t, unit)
	want := map[string][]string{
		"Service.Type":            {"exec"},
		"Service.RemainAfterExit": {"yes"},
		"Service.ExecStart": {"/bin/sh -c '/usr/bin/timeout 15m /usr/bin/systemctl is-system-running --wait --quiet; " +
			"exec /usr/bin/systemctl start --no-block etcd-agent.service'"},
		"Install.WantedBy": {"multi-user.target"},
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestUnitFileOptions(t *testing.T) {
	unit, err := systemd.UnitFile(systemd.UnitOptions{
		User: "core", Group: "etcd", BinaryPath: "/opt/bin/etcd-agent", ConfigPath: "/etc/ea.yaml", UID: 1001,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := unitKeys(t, unit)
	for k, v := range map[string]string{
		"Service.User":        "core",
		"Service.Group":       "etcd",
		"Service.ExecStart":   "/opt/bin/etcd-agent run --config /etc/ea.yaml",
		"Service.Environment": "XDG_RUNTIME_DIR=/run/user/1001",
	} {
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("%s = %q, want exactly [%q]", k, vs, v)
		}
	}
}

func TestUnitFileRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  systemd.UnitOptions
		field string
	}{
		{"user with newline", systemd.UnitOptions{User: "etcd\nExecStartPre=/bin/sh"}, "User"},
		{"user uppercase", systemd.UnitOptions{User: "Etcd"}, "User"},
		{"group with space", systemd.UnitOptions{Group: "etcd user"}, "Group"},
		{"relative binary", systemd.UnitOptions{BinaryPath: "etcd-agent"}, "BinaryPath"},
		{"binary with space", systemd.UnitOptions{BinaryPath: "/opt/my bin/etcd-agent"}, "BinaryPath"},
		{"config with specifier", systemd.UnitOptions{ConfigPath: "/etc/%n.yaml"}, "ConfigPath"},
		{"config with newline", systemd.UnitOptions{ConfigPath: "/etc/a.yaml\n[Install]"}, "ConfigPath"},
		{"negative uid", systemd.UnitOptions{UID: -1}, "UID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unit, err := systemd.UnitFile(tc.opts)
			if err == nil {
				t.Fatalf("rendered:\n%s", unit)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

// TestUnitFileVerifies runs systemd's own checker over the rendered unit. It
// fails on errors (bad values, missing ExecStart binary) and, because unknown
// or misspelt keys are only warnings, on any output at all. systemd-analyze
// does not check that User= exists, so the default etcd-user need not.
func TestUnitFileVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: install it with `apt-get install -y systemd`")
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts systemd.UnitOptions
	}{
		{"defaults", systemd.UnitOptions{BinaryPath: truePath}},
		{"with uid", systemd.UnitOptions{BinaryPath: truePath, User: "core", UID: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unit, err := systemd.UnitFile(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			start, err := systemd.StartUnitFile()
			if err != nil {
				t.Fatal(err)
			}
			// Both units, as installed together: each names the other.
			dir := t.TempDir()
			path := filepath.Join(dir, systemd.UnitName)
			startPath := filepath.Join(dir, systemd.StartUnitName)
			if err := os.WriteFile(path, unit, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(startPath, start, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, analyze, "verify", "--man=no", path, startPath).CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Fatalf("systemd-analyze verify %s %s: %v\n%s\nunit:\n%s\n%s", path, startPath, err, out, unit, start)
			}
		})
	}
}

// TestUnitFileVerifyCatchesMistakes proves the verify test above can fail:
// the same check reports a misspelt key and a missing binary.
func TestUnitFileVerifyCatchesMistakes(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: install it with `apt-get install -y systemd`")
	}
	unit, err := systemd.UnitFile(systemd.UnitOptions{BinaryPath: "/nonexistent/etcd-agent"})
	if err != nil {
		t.Fatal(err)
	}
	unit = bytes.Replace(unit, []byte("KillMode=mixed"), []byte("KilMode=mixed"), 1)
	path := filepath.Join(t.TempDir(), systemd.UnitName)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, "verify", "--man=no", path).CombinedOutput()
	if err == nil {
		t.Fatalf("verify passed a unit with a missing binary:\n%s", out)
	}
	for _, want := range []string{"KilMode", "/nonexistent/etcd-agent"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("verify output does not mention %q:\n%s", want, out)
		}
	}
}
