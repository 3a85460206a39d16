package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/pki"
)

// butaneSpecDir makes a CA with pki.InitCA and a spec next to it; pointer
// is the spec's pointer.url ("" for none).
func butaneSpecDir(t *testing.T, pointer string) string {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := pki.InitCA(dir, pki.CAOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		t.Fatal(err)
	}
	spec := "cluster: {name: t, size: 3}\n" +
		"discovery: {endpoints: [https://10.0.0.10:2379], token: abc}\n" +
		"agent: {url: https://example.com/etcd-agent, sha512: " + strings.Repeat("ab", 64) + "}\n" +
		"ca: {cert: ca.crt, key: ca.key, allowKeyInUserData: " + map[bool]string{true: "false", false: "true"}[pointer != ""] + "}\n" +
		"ssh: {authorizedKeys: [\"" + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " me\"]}\n"
	if pointer != "" {
		spec += "pointer: {url: " + pointer + "}\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runButaneCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLI(t, nil, append([]string{"butane"}, args...)...)
}

func TestButaneCommandPointer(t *testing.T) {
	dir := butaneSpecDir(t, "s3://bucket/etcd/full.ign")
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runButaneCLI(t, "--spec", filepath.Join(dir, "cluster.yaml"), "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	modes := map[string]os.FileMode{"node.bu": 0o600, "node.ign": 0o600, "full.ign": 0o600, "user-data.ign": 0o644}
	for name, mode := range modes {
		fi, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %#o, want %#o", name, fi.Mode().Perm(), mode)
		}
	}
	full, _ := os.ReadFile(filepath.Join(out, "full.ign"))
	node, _ := os.ReadFile(filepath.Join(out, "node.ign"))
	ud, _ := os.ReadFile(filepath.Join(out, "user-data.ign"))
	if !bytes.Equal(full, node) || !bytes.Contains(ud, []byte("s3://bucket/etcd/full.ign")) {
		t.Error("full.ign must equal node.ign and user-data.ign must point at the upload URL")
	}
	for _, want := range []string{"EC2 user data: ", "of 16384 bytes: OK", "aws s3 cp full.ign s3://bucket/etcd/full.ign", "s3:GetObject", "user-data.ign"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestButaneCommandNoPointerRemovesStaleUpload(t *testing.T) {
	dir := butaneSpecDir(t, "")
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	// An earlier render left files with loose modes and a full.ign.
	for _, name := range []string{"node.bu", "full.ign"} {
		if err := os.WriteFile(filepath.Join(out, name), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runButaneCLI(t, "--spec", filepath.Join(dir, "cluster.yaml"), "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "full.ign")); !os.IsNotExist(err) {
		t.Errorf("stale full.ign still there: %v", err)
	}
	for _, name := range []string{"node.bu", "user-data.ign"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600 (it carries the CA key)", name, err, fi.Mode())
		}
	}
	if !strings.Contains(stdout, "CA key") {
		t.Errorf("no warning about the CA key in user data:\n%s", stdout)
	}
}

func TestButaneCommandBadInputExit78(t *testing.T) {
	dir := butaneSpecDir(t, "")
	if err := os.Chmod(filepath.Join(dir, "ca.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no flags":           {nil, "--spec"},
		"missing spec":       {[]string{"--spec", filepath.Join(dir, "nope.yaml"), "--out", dir}, "nope.yaml"},
		"world-readable key": {[]string{"--spec", filepath.Join(dir, "cluster.yaml"), "--out", dir}, "chmod 600"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runButaneCLI(t, tc.args...)
			if code != config.ExitCode || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, stderr, config.ExitCode, tc.want)
			}
		})
	}
}
