package butane

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	butaneconfig "github.com/coreos/butane/config"
	"github.com/coreos/butane/config/common"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/systemd"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenSpecs are the specs under testdata/specs and whether each renders
// a pointer config.
var goldenSpecs = []struct {
	name    string
	pointer bool
	version string
}{
	{"v3-discovery", false, "1.6.0"},
	{"v2-url", false, "1.5.0"},
	{"static", false, "1.6.0"},
	{"pointer-https", true, "1.6.0"},
	{"pointer-s3", true, "1.6.0"},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenSpecs {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Render(loadTestSpec(t, tc.name), testOptions())
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if res.Pointer != tc.pointer {
				t.Fatalf("Pointer = %v, want %v", res.Pointer, tc.pointer)
			}
			checkGolden(t, tc.name+".bu", res.Butane)
			checkGolden(t, tc.name+".ign", res.Ignition)
			checkGolden(t, tc.name+".user-data.ign", res.UserData)
			if len(res.UserData) > UserDataLimit {
				t.Errorf("user data is %d bytes, over %d", len(res.UserData), UserDataLimit)
			}

			// The committed Butane translates on its own with zero report
			// entries and to exactly the committed Ignition.
			ign, rpt, err := butaneconfig.TranslateBytes(res.Butane, common.TranslateBytesOptions{})
			if err != nil || len(rpt.Entries) != 0 {
				t.Fatalf("translate golden Butane: err=%v report=%v", err, rpt)
			}
			if !bytes.Equal(ign, res.Ignition) {
				t.Error("independent translation differs from Result.Ignition")
			}
			for what, b := range map[string][]byte{"full": res.Ignition, "user data": res.UserData} {
				if rpt, err := ignitionVersions[tc.version].parse(b); err != nil || len(rpt.Entries) != 0 {
					t.Errorf("validate %s Ignition: err=%v report=%v", what, err, rpt)
				}
				want := `"version":"` + ignitionVersions[tc.version].ignition + `"`
				if !bytes.Contains(b, []byte(want)) {
					t.Errorf("%s Ignition lacks %s", what, want)
				}
			}
			checkNodeConfig(t, loadTestSpec(t, tc.name), res)
		})
	}
}

// checkNodeConfig asserts what the node gets, read back from the Ignition.
func checkNodeConfig(t *testing.T, spec Spec, res Result) {
	t.Helper()
	s := spec.withDefaults("v3.7.3")
	c := parseIgnition(t, res.Ignition)
	user := s.User

	if len(c.Passwd.Users) != 1 || c.Passwd.Users[0].Name != user {
		t.Fatalf("users = %+v, want only %s", c.Passwd.Users, user)
	}
	if u := c.Passwd.Users[0]; len(u.Groups) != 1 || u.Groups[0] != "systemd-journal" || len(u.SSHAuthorizedKeys) == 0 {
		t.Errorf("user %s: groups %v (want only systemd-journal, to read the agent's journal: no sudo), %d SSH keys", user, u.Groups, len(u.SSHAuthorizedKeys))
	}
	if bytes.Contains(res.Ignition, []byte("selinux")) || bytes.Contains(res.Butane, []byte("setenforce")) {
		t.Error("the config touches SELinux")
	}

	home := "/home/" + user
	wantDirs := []string{home + "/.config", home + "/.config/systemd", home + "/.config/systemd/user",
		home + "/.config/systemd/user/sockets.target.wants", StateDir}
	if len(c.Storage.Directories) != len(wantDirs) {
		t.Fatalf("directories = %d, want %d", len(c.Storage.Directories), len(wantDirs))
	}
	for i, d := range c.Storage.Directories {
		if d.Path != wantDirs[i] || str(d.User.Name) != user || str(d.Group.Name) != user {
			t.Errorf("directory %d = %s owned by %s:%s, want %s owned by %s", i, d.Path, str(d.User.Name), str(d.Group.Name), wantDirs[i], user)
		}
	}
	if len(c.Storage.Links) != 1 {
		t.Fatalf("links = %d, want 1", len(c.Storage.Links))
	}
	if l := c.Storage.Links[0]; l.Path != home+"/.config/systemd/user/sockets.target.wants/podman.socket" ||
		str(l.Target) != "/usr/lib/systemd/user/podman.socket" || str(l.User.Name) != user {
		t.Errorf("podman.socket link = %s -> %s (owner %s)", l.Path, str(l.Target), str(l.User.Name))
	}

	modes := map[string]int{"/var/lib/systemd/linger/" + user: 0o644, AgentBinaryPath: 0o755,
		AgentConfigPath: 0o644, CACertPath: 0o644, CAKeyPath: 0o600}
	for path, mode := range modes {
		if f := findFile(t, c, path); f.Mode == nil || *f.Mode != mode {
			t.Errorf("%s mode = %v, want %#o", path, f.Mode, mode)
		}
	}
	if key := findFile(t, c, CAKeyPath); str(key.User.Name) != user {
		t.Errorf("ca.key owner = %q, want %s", str(key.User.Name), user)
	}
	bin := findFile(t, c, AgentBinaryPath)
	if str(bin.Contents.Source) != s.Agent.URL || str(bin.Contents.Verification.Hash) != "sha512-"+s.Agent.SHA512 || bin.Contents.Compression != nil {
		t.Errorf("agent binary: source %q hash %q compression %v", str(bin.Contents.Source), str(bin.Contents.Verification.Hash), bin.Contents.Compression)
	}
	for path, want := range map[string]string{CACertPath: "ca.crt", CAKeyPath: "ca.key"} {
		disk, err := os.ReadFile(filepath.Join("testdata", "ca", want))
		if err != nil {
			t.Fatal(err)
		}
		if got := fileContents(t, findFile(t, c, path)); !bytes.Equal(got, disk) {
			t.Errorf("%s contents differ from testdata/ca/%s", path, want)
		}
	}

	if len(c.Systemd.Units) != 2 {
		t.Fatalf("units = %d, want 2", len(c.Systemd.Units))
	}
	unit, err := systemd.UnitFile(systemd.UnitOptions{User: user})
	if err != nil {
		t.Fatal(err)
	}
	startUnit, err := systemd.StartUnitFile()
	if err != nil {
		t.Fatal(err)
	}
	// Only the start unit is enabled; the agent's enablement is left alone
	// (enabled: false would preset it disabled).
	if u := c.Systemd.Units[0]; u.Name != systemd.StartUnitName || u.Enabled == nil || !*u.Enabled || str(u.Contents) != string(startUnit) {
		t.Errorf("unit %s enabled=%v, contents match systemd.StartUnitFile: %v", u.Name, u.Enabled, str(u.Contents) == string(startUnit))
	}
	if u := c.Systemd.Units[1]; u.Name != systemd.UnitName || u.Enabled != nil || str(u.Contents) != string(unit) {
		t.Errorf("unit %s enabled=%v (want unset), contents match systemd.UnitFile: %v", u.Name, u.Enabled, str(u.Contents) == string(unit))
	}

	// The node's config.yaml loads with the agent's own loader, as at boot.
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, fileContents(t, findFile(t, c, AgentConfigPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Source{Path: cfgPath, DefaultImageTag: "v3.7.3", UID: 1001})
	if err != nil {
		t.Fatalf("agent config does not load: %v", err)
	}
	if cfg.Node.Identity != "imds" || cfg.Etcd.Runtime != "podman" || cfg.Cluster.Size != s.Cluster.Size ||
		cfg.Etcd.Image != s.Etcd.Image || cfg.Podman.Socket != "unix:///run/user/1001/podman/podman.sock" {
		t.Errorf("agent config: identity %s runtime %s size %d image %s socket %s",
			cfg.Node.Identity, cfg.Etcd.Runtime, cfg.Cluster.Size, cfg.Etcd.Image, cfg.Podman.Socket)
	}

	if res.Pointer {
		checkPointer(t, s, res)
	} else if !bytes.Equal(res.UserData, res.Ignition) {
		t.Error("without a pointer, user data must be the full config")
	}
}

// checkPointer asserts the pointer user data merges exactly the uploaded
// full config and carries nothing else (in particular not the CA key).
func checkPointer(t *testing.T, s Spec, res Result) {
	t.Helper()
	if len(res.Uploads) != 1 {
		t.Fatalf("uploads = %d, want 1", len(res.Uploads))
	}
	up := res.Uploads[0]
	if up.Dest != s.Pointer.URL || !bytes.Equal(up.Contents, res.Ignition) || up.SHA512 != sha512Hex(res.Ignition) {
		t.Errorf("upload = %s (%d bytes, sha512 %s), want the full config to %s", up.Dest, len(up.Contents), up.SHA512, s.Pointer.URL)
	}
	p := parseIgnition(t, res.UserData)
	if len(p.Ignition.Config.Merge) != 1 {
		t.Fatalf("pointer merges %d configs, want 1", len(p.Ignition.Config.Merge))
	}
	m := p.Ignition.Config.Merge[0]
	if str(m.Source) != s.Pointer.URL || str(m.Verification.Hash) != "sha512-"+sha512Hex(up.Contents) || m.Compression != nil {
		t.Errorf("merge = %s hash %s compression %v", str(m.Source), str(m.Verification.Hash), m.Compression)
	}
	if len(p.Storage.Files) != 0 || len(p.Passwd.Users) != 0 || len(p.Systemd.Units) != 0 {
		t.Error("the pointer config carries more than the merge")
	}
	var sawUpload bool
	for _, n := range res.Notes {
		sawUpload = sawUpload || strings.Contains(n, s.Pointer.URL)
	}
	if !sawUpload {
		t.Errorf("notes do not say where to upload: %q", res.Notes)
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update and review the diff)\n got: %.400s\nwant: %.400s", name, got, want)
	}
}
