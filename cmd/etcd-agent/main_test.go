package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/refusal"
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

// leaves are every runnable command of the tree that has no subcommands
// (cobra's own help command aside), by their path under etcd-agent.
func leaves(c *cobra.Command) [][]string {
	var out [][]string
	for _, s := range c.Commands() {
		if s.Name() == "help" {
			continue
		}
		if s.HasSubCommands() {
			for _, l := range leaves(s) {
				out = append(out, append([]string{s.Name()}, l...))
			}
			continue
		}
		out = append(out, []string{s.Name()})
	}
	return out
}

// TestHelpForEveryCommand walks the command tree: every command has a
// summary, and --help (and help CMD) exits 0 and prints on stdout a usage
// line naming the command, and only that command's flags.
func TestHelpForEveryCommand(t *testing.T) {
	var walk func(path []string, c *cobra.Command)
	walk = func(path []string, c *cobra.Command) {
		p := strings.Join(path, " ")
		if c.Short == "" {
			t.Errorf("%s has no summary", p)
		}
		for _, args := range [][]string{append(path[1:], "--help"), append([]string{"help"}, path[1:]...)} {
			code, out, errOut := runCLI(t, nil, args...)
			if code != 0 || errOut != "" {
				t.Errorf("%s: exit %d, stderr %s", strings.Join(args, " "), code, errOut)
			}
			if !strings.Contains(out, "Usage:\n  "+p) {
				t.Errorf("%s does not show its usage line:\n%s", strings.Join(args, " "), out)
			}
		}
		for _, s := range c.Commands() {
			walk(append(append([]string(nil), path...), s.Name()), s)
		}
	}
	walk([]string{"etcd-agent"}, newRootCmd(env{}))
	// Only its own flags: status has no run-only flag, leave no -o.
	_, out, _ := runCLI(t, nil, "status", "--help")
	if strings.Contains(out, "--files") || !strings.Contains(out, "-o, --output format") {
		t.Errorf("status --help:\n%s", out)
	}
	if _, out, _ := runCLI(t, nil, "leave", "--help"); strings.Contains(out, "--output") || strings.Contains(out, "--timeout") {
		t.Errorf("leave --help:\n%s", out)
	}
}

// TestRecoverHelpPlaceholders: a backquoted word in a flag's usage is
// pflag's placeholder; recover's shows REF, NAME,NAME and GENERATION, not
// a command line.
func TestRecoverHelpPlaceholders(t *testing.T) {
	_, out, _ := runCLI(t, nil, "recover", "--help")
	for _, want := range []string{"--from-snapshot REF ", "--lost NAME,NAME ", "--replaces GENERATION "} {
		if !strings.Contains(out, want) {
			t.Errorf("recover --help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--from-snapshot etcd-agent") {
		t.Errorf("recover --help takes a command for the placeholder:\n%s", out)
	}
}

func TestUnknownCommandAndNoArgs(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"snapshot", "frobnicate"}, {"help", "frobnicate"}, {"help", "snapshot", "frobnicate"}} {
		code, out, errOut := runCLI(t, nil, args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "frobnicate") || !strings.Contains(errOut, "--help' for usage") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{nil, {"snapshot"}} {
		if code, out, errOut := runCLI(t, nil, args...); code != exitUsage || out != "" || !strings.Contains(errOut, "missing command") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	// GNU flags: after the arguments, with = or a space, -oFORMAT.
	for _, args := range [][]string{{"version", "-ojson"}, {"version", "--output=json"}, {"version", "-o", "json"}} {
		if code, out, errOut := runCLI(t, nil, args...); code != 0 || !strings.HasPrefix(out, "{") {
			t.Errorf("%v: exit %d, %q %q", args, code, out, errOut)
		}
	}
	if code, _, errOut := runCLI(t, nil, "version", "-o", "xml"); code != exitUsage || !strings.Contains(errOut, "use table, json or yaml") {
		t.Errorf("-o xml: exit %d, %q", code, errOut)
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

// TestReportRefusalAndFailure: a refusal (recover, leave, fleetlock release
// refuse with refusal.Error) exits 3, any other error of a run 1; the line on
// stderr names the command once, even when the error names it too (the
// agent's leave errors start "leave: " for its own log).
func TestReportRefusalAndFailure(t *testing.T) {
	root := newRootCmd(env{})
	for _, tc := range []struct {
		path []string
		err  error
		code int
		want string
	}{
		{[]string{"leave"}, fmt.Errorf("leave: %w", refusal.Errorf("this is the last voter")), exitUnhealthy, "etcd-agent leave: refused: this is the last voter\n"},
		{[]string{"leave"}, errors.New("leave: survey the cluster: context deadline exceeded"), exitFailure, "etcd-agent leave: survey the cluster: context deadline exceeded\n"},
		{[]string{"fleetlock", "release"}, refusal.Errorf("n2 is rebooting"), exitUnhealthy, "etcd-agent fleetlock release: refused: n2 is rebooting\n"},
		{[]string{"fleetlock", "release"}, errors.New("fleetlock release: no reboot slot is held"), exitFailure, "etcd-agent fleetlock release: no reboot slot is held\n"},
		{[]string{"fleetlock", "release"}, errors.New("release: x"), exitFailure, "etcd-agent fleetlock release: x\n"},
		{[]string{"recover"}, fmt.Errorf("wrapped: %w", refusal.Errorf("the cluster still has a quorum")), exitUnhealthy, "etcd-agent recover: wrapped: refused: the cluster still has a quorum\n"},
		{[]string{"recover"}, errors.New("recovery of x: y"), exitFailure, "etcd-agent recover: recovery of x: y\n"},
	} {
		cmd, _, err := root.Find(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		code := report(env{stderr: &errb}, cmd, &runError{err: tc.err})
		if code != tc.code || errb.String() != tc.want {
			t.Errorf("%v %q: exit %d, stderr %q; want %d, %q", tc.path, tc.err, code, errb.String(), tc.code, tc.want)
		}
	}
}
