package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(context.Background(), env2(&out, &errb, env), args)
	return code, out.String(), errb.String()
}

func env2(out, errb *bytes.Buffer, vars map[string]string) env {
	return env{stdout: out, stderr: errb, lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

// TestHelpForEveryCommand walks the command tree: every command has a
// summary, and --help exits 0 and prints a usage line naming the command.
func TestHelpForEveryCommand(t *testing.T) {
	var walk func(path []string, cmds []*command)
	walk = func(path []string, cmds []*command) {
		for _, c := range cmds {
			p := append(append([]string(nil), path...), c.name)
			if c.summary == "" {
				t.Errorf("%s has no summary", strings.Join(p, " "))
			}
			if len(c.sub) > 0 {
				walk(p, c.sub)
			}
			code, out, errOut := runCLI(t, nil, append(p, "--help")...)
			if code != 0 {
				t.Errorf("%s --help: exit %d, stderr %s", strings.Join(p, " "), code, errOut)
			}
			if !strings.Contains(out+errOut, "Usage: etcd-agent "+strings.Join(p, " ")) {
				t.Errorf("%s --help does not show its usage line:\n%s%s", strings.Join(p, " "), out, errOut)
			}
		}
	}
	walk(nil, commands())
}

func TestUnknownCommandAndNoArgs(t *testing.T) {
	if code, _, errOut := runCLI(t, nil, "frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, out, _ := runCLI(t, nil); code != exitUsage || !strings.Contains(out, "Commands:") {
		t.Errorf("no args: exit %d, %q", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.Contains(out, "etcd-agent dev") || !strings.Contains(out, "etcd       v3.7.3") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
	if code, flagOut, _ := runCLI(t, nil, "--version"); code != 0 || flagOut != out {
		t.Errorf("--version: exit %d\n%s\nwant what version prints", code, flagOut)
	}
}

// TestConfigErrorsExit78: a bad config exits with the code the unit's
// RestartPreventExitStatus names, and the message names the field.
func TestConfigErrorsExit78(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("cluster:\n  size: 3\n  discovery:\n    static: a=https://10.0.0.1:2380\nnode:\n  identity: gce\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, nil, "run", "--config", path)
	if code != config.ExitCode || !strings.Contains(errOut, "node.identity") || !strings.Contains(errOut, "gce") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "run", "--config", "/nonexistent.yaml")
	if code != config.ExitCode || !strings.Contains(errOut, "/nonexistent.yaml") {
		t.Errorf("missing config: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, map[string]string{"ETCD_AGENT_NODE_IP": "nope"}, "run", "--config", path)
	if code != config.ExitCode || !strings.Contains(errOut, "node.ip") {
		t.Errorf("bad env override: exit %d, stderr %q", code, errOut)
	}
}

func TestCAInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	code, out, errOut := runCLI(t, nil, "ca", "init", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for name, mode := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	if !strings.Contains(out, "ca.key") {
		t.Errorf("output %q", out)
	}
	// A second init refuses to overwrite the CA.
	if code, _, errOut := runCLI(t, nil, "ca", "init", "--dir", dir); code == 0 || !strings.Contains(errOut, "ca.crt") {
		t.Errorf("second init: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "ca", "init"); code != config.ExitCode || !strings.Contains(errOut, "--dir") {
		t.Errorf("no --dir: exit %d, %q", code, errOut)
	}
}

// TestJSONLogs: agent.logFormat json writes one JSON object per line with
// the level and the message, what a log shipper parses.
func TestJSONLogs(t *testing.T) {
	var out, errb bytes.Buffer
	newLogger(env2(&out, &errb, nil), "info", "json").Info("ready", "status", "healthy")
	var line struct {
		Level, Msg, Status string
	}
	if err := json.Unmarshal(errb.Bytes(), &line); err != nil || line.Level != "INFO" || line.Msg != "ready" || line.Status != "healthy" {
		t.Errorf("json log line %q: %+v, %v", errb.String(), line, err)
	}
}
