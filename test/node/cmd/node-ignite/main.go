// Command node-ignite is the node test image's first process: it does what
// Ignition does in a Fedora CoreOS initramfs — lays the rendered Ignition
// config down on / (users, files, links, units, presets) — optionally loads
// the node's etcd image into the agent user's Podman storage (the stand-in
// for the pull from the registry, which has no route here), then execs
// /sbin/init so systemd boots the node as PID 1.
//
//	node-ignite --config user-data.ign --source URL=FILE [--preload-image ARCHIVE] -- /sbin/init
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/ignition/v2/config/v3_5/types"

	"github.com/etcd-agent/etcd-agent/test/node/ignite"
)

// sources collects --source URL=FILE flags.
type sources map[string]string

func (s sources) String() string { return fmt.Sprint(map[string]string(s)) }
func (s sources) Set(v string) error {
	url, file, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want URL=FILE, got %q", v)
	}
	s[url] = file
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "node-ignite:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("node-ignite", flag.ContinueOnError)
	configPath := fs.String("config", "", "Ignition config to apply (required)")
	preload := fs.String("preload-image", "", "image archive (podman save) to load into the first passwd user's rootless storage")
	src := sources{}
	fs.Var(src, "source", "URL=FILE: a local file standing in for a remote source (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() == 0 {
		return errors.New("usage: node-ignite --config FILE [--source URL=FILE] [--preload-image ARCHIVE] -- INIT [ARGS]")
	}
	raw, err := os.ReadFile(*configPath)
	if err != nil {
		return err
	}
	cfg, err := ignite.Parse(raw)
	if err != nil {
		return err
	}
	// A container restart runs this again on the same root: Ignition runs
	// once per node, so only the first boot applies the config.
	const marker = "/var/lib/node-ignite.done"
	if _, err := os.Stat(marker); err != nil {
		a := ignite.Applier{Root: "/", Sources: src, AddUser: addUser}
		if err := a.Apply(cfg); err != nil {
			return err
		}
		if *preload != "" && len(cfg.Passwd.Users) > 0 {
			if err := loadImage(cfg.Passwd.Users[0].Name, *preload); err != nil {
				return err
			}
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "node-ignite: applied", *configPath)
	}
	// On a real host systemd makes / recursively shared at boot; it skips
	// that in a container, whose root Podman makes private. Services with
	// their own mount namespace (the agent's ProtectSystem=, PrivateTmp=)
	// would then never see mounts made after they started — the user's
	// /run/user/UID tmpfs with the Podman socket — as they do on the node.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make / shared: %w", err)
	}
	init, err := exec.LookPath(fs.Arg(0))
	if err != nil {
		return err
	}
	return syscall.Exec(init, fs.Args(), os.Environ())
}

// addUser creates a user as Ignition does on Fedora CoreOS: useradd with a
// home directory, SSH keys in ~/.ssh/authorized_keys.d/ignition.
func addUser(u types.PasswdUser) error {
	args := []string{"--create-home", "--shell", "/bin/bash"}
	if u.UID != nil {
		args = append(args, "--uid", strconv.Itoa(*u.UID))
	}
	if len(u.Groups) > 0 {
		groups := make([]string, len(u.Groups))
		for i, g := range u.Groups {
			groups[i] = string(g)
		}
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	if out, err := exec.Command("useradd", append(args, u.Name)...).CombinedOutput(); err != nil {
		return fmt.Errorf("useradd: %w: %s", err, out)
	}
	if len(u.SSHAuthorizedKeys) == 0 {
		return nil
	}
	acct, err := user.Lookup(u.Name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	dir := filepath.Join(acct.HomeDir, ".ssh/authorized_keys.d")
	var keys strings.Builder
	for _, k := range u.SSHAuthorizedKeys {
		keys.WriteString(string(k) + "\n")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ignition"), []byte(keys.String()), 0o600); err != nil {
		return err
	}
	for _, p := range []string{filepath.Dir(dir), dir, filepath.Join(dir, "ignition")} {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// loadImage loads archive into name's rootless Podman storage, with the
// runtime dir the user's systemd manager will use, so Podman's recorded
// paths match the later socket-activated service.
func loadImage(name, archive string) error {
	acct, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	rundir := "/run/user/" + acct.Uid
	if err := os.MkdirAll(rundir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(rundir, uid, gid); err != nil {
		return err
	}
	cmd := exec.Command("podman", "load", "--quiet", "--input", archive)
	cmd.Dir = acct.HomeDir
	cmd.Env = []string{"HOME=" + acct.HomeDir, "USER=" + name, "XDG_RUNTIME_DIR=" + rundir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("load %s for %s: %w: %s", archive, name, err, out)
	}
	// The pause process podman leaves behind must not outlive this stage.
	_ = exec.Command("pkill", "-u", acct.Uid).Run()
	return nil
}
