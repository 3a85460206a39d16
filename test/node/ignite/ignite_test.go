package ignite_test

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/ignition/v2/config/v3_5/types"

	"github.com/etcd-agent/etcd-agent/butane"
	"github.com/etcd-agent/etcd-agent/pki"
	"github.com/etcd-agent/etcd-agent/test/node/ignite"
)

// render returns the Ignition `etcd-agent butane` renders for a small spec,
// with the agent binary at agentPath.
func render(t *testing.T, agentPath string) []byte {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := pki.InitCA(dir, pki.CAOptions{CommonName: "ignite test CA"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(agentPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(bin)
	spec := fmt.Sprintf(`discovery:
  static: etcd-10-0-0-1=https://10.0.0.1:2380
agent:
  url: https://downloads.example.invalid/etcd-agent
  sha512: %s
ca: {cert: ca.crt, key: ca.key, allowKeyInUserData: true}
ssh:
  authorizedKeys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINzb4yXjCKywK1JnbaCcAHt+PIaG54MQfznyTfrBEpQe t]
`, hex.EncodeToString(sum[:]))
	s, err := butane.ParseSpec([]byte(spec), dir, "spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := butane.Render(s, butane.Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	return res.UserData
}

// newRoot is a root with a passwd that AddUser appends to.
func newRoot(t *testing.T) (string, func(types.PasswdUser) error) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	add := func(u types.PasswdUser) error {
		for _, f := range []string{"etc/passwd", "etc/group"} {
			line := fmt.Sprintf("%s:x:1000:1000::/home/%s:/bin/sh\n", u.Name, u.Name)
			if f == "etc/group" {
				line = u.Name + ":x:1000:\n"
			}
			fh, err := os.OpenFile(filepath.Join(root, f), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = fh.WriteString(line)
			fh.Close()
			if err != nil {
				return err
			}
		}
		return os.MkdirAll(filepath.Join(root, "home", u.Name), 0o700)
	}
	return root, add
}

// TestApplyRenderedNodeConfig lays the rendered node config down on a
// scratch root: every file with its mode and owner, the user's socket link,
// the unit and its enablement through presets.
func TestApplyRenderedNodeConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chowns to the node user: needs root")
	}
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("systemctl not installed")
	}
	agent := filepath.Join(t.TempDir(), "etcd-agent")
	if err := os.WriteFile(agent, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := ignite.Parse(render(t, agent))
	if err != nil {
		t.Fatal(err)
	}
	root, add := newRoot(t)
	a := ignite.Applier{Root: root, Sources: map[string]string{"https://downloads.example.invalid/etcd-agent": agent}, AddUser: add}
	if err := a.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
		uid  uint32
	}{
		{"/usr/local/bin/etcd-agent", 0o755, 0},
		{"/etc/etcd-agent/config.yaml", 0o644, 0},
		{"/etc/etcd-agent/ca.crt", 0o644, 0},
		{"/etc/etcd-agent/ca.key", 0o600, 1000},
		{"/var/lib/systemd/linger/etcd-user", 0o644, 0},
		{"/var/lib/etcd-agent", 0o755 | os.ModeDir, 1000},
		{"/home/etcd-user/.config/systemd/user", 0o755 | os.ModeDir, 1000},
	} {
		st, err := os.Lstat(filepath.Join(root, c.path))
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if st.Mode() != c.mode || st.Sys().(*syscall.Stat_t).Uid != c.uid {
			t.Errorf("%s: mode %v uid %d, want %v uid %d", c.path, st.Mode(), st.Sys().(*syscall.Stat_t).Uid, c.mode, c.uid)
		}
	}
	link := "/home/etcd-user/.config/systemd/user/sockets.target.wants/podman.socket"
	if target, err := os.Readlink(filepath.Join(root, link)); err != nil || target != "/usr/lib/systemd/user/podman.socket" {
		t.Errorf("%s -> %q (%v), want /usr/lib/systemd/user/podman.socket", link, target, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "/etc/systemd/system/etcd-agent.service"))
	if err != nil || !strings.Contains(string(unit), "Type=notify") {
		t.Errorf("unit not written: %v", err)
	}
	preset, _ := os.ReadFile(filepath.Join(root, ignite.PresetFile))
	if string(preset) != "enable etcd-agent-start.service\n" {
		t.Errorf("preset = %q", preset)
	}
	if _, err := os.Lstat(filepath.Join(root, "/etc/systemd/system/multi-user.target.wants/etcd-agent-start.service")); err != nil {
		t.Errorf("start unit not enabled by the preset: %v", err)
	}
}

// TestApplyRefusesAMismatchedDownload: the agent binary's sha512 from the
// spec is checked, as Ignition does.
func TestApplyRefusesAMismatchedDownload(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chowns the user's directories first: needs root")
	}
	dir := t.TempDir()
	agent, other := filepath.Join(dir, "etcd-agent"), filepath.Join(dir, "other")
	for _, f := range []string{agent, other} {
		if err := os.WriteFile(f, []byte(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := ignite.Parse(render(t, agent))
	if err != nil {
		t.Fatal(err)
	}
	root, add := newRoot(t)
	a := ignite.Applier{Root: root, Sources: map[string]string{"https://downloads.example.invalid/etcd-agent": other}, AddUser: add,
		Systemctl: func(...string) error { return nil }}
	err = a.Apply(cfg)
	if err == nil || !strings.Contains(err.Error(), "/usr/local/bin/etcd-agent") || !strings.Contains(err.Error(), "verification failed") {
		t.Fatalf("apply with the wrong binary = %v, want a verification failure naming the file", err)
	}
}
