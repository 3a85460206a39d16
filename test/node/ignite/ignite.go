// Package ignite lays an Ignition config down on a root file system the way
// Ignition's files stage does on a Fedora CoreOS node: users first (so files
// can be owned by them), then directories, files and links with their modes
// and owners, then systemd units with their enablement as presets. It exists
// for the node tests (test/node), which boot a Debian container with systemd
// as PID 1 from exactly the Ignition `etcd-agent butane` renders; anything in
// the config it cannot do faithfully is an error, never skipped.
package ignite

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	ign35 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/vincent-petithory/dataurl"
)

// PresetFile is where Ignition records unit enablement; systemd applies it.
const PresetFile = "/etc/systemd/system-preset/20-ignition.preset"

// Applier applies one Ignition config to Root.
type Applier struct {
	// Root is the node's root directory ("/" on the node itself).
	Root string
	// Sources maps a remote source URL (https://, s3://) to a local file that
	// stands in for the download; its verification hash is still checked.
	Sources map[string]string
	// AddUser creates a passwd.users entry on Root. Nil: users are an error.
	AddUser func(u types.PasswdUser) error
	// Systemctl runs `systemctl ARGS...` against Root. Nil: exec systemctl
	// with --root=Root (works without a running manager).
	Systemctl func(args ...string) error
}

// Parse decodes and validates an Ignition config of spec 3.0 to 3.5.
func Parse(raw []byte) (types.Config, error) {
	cfg, rpt, err := ign35.ParseCompatibleVersion(raw)
	if err != nil {
		return types.Config{}, fmt.Errorf("parse ignition: %w: %s", err, rpt.String())
	}
	return cfg, nil
}

// Apply lays cfg down on Root.
func (a Applier) Apply(cfg types.Config) error {
	if err := unsupported(cfg); err != nil {
		return err
	}
	for _, u := range cfg.Passwd.Users {
		if a.AddUser == nil {
			return fmt.Errorf("passwd.users %s: no AddUser configured", u.Name)
		}
		if err := a.AddUser(u); err != nil {
			return fmt.Errorf("passwd.users %s: %w", u.Name, err)
		}
	}
	ids, err := readIDs(a.Root)
	if err != nil {
		return err
	}
	for _, d := range cfg.Storage.Directories {
		if err := a.directory(ids, d); err != nil {
			return fmt.Errorf("storage.directories %s: %w", d.Path, err)
		}
	}
	for _, f := range cfg.Storage.Files {
		if err := a.file(ids, f); err != nil {
			return fmt.Errorf("storage.files %s: %w", f.Path, err)
		}
	}
	for _, l := range cfg.Storage.Links {
		if err := a.link(ids, l); err != nil {
			return fmt.Errorf("storage.links %s: %w", l.Path, err)
		}
	}
	return a.units(cfg.Systemd.Units)
}

// unsupported names the parts of cfg this applier does not implement.
func unsupported(cfg types.Config) error {
	var what []string
	s := cfg.Storage
	if len(s.Disks)+len(s.Filesystems)+len(s.Luks)+len(s.Raid) > 0 {
		what = append(what, "storage.disks/filesystems/luks/raid")
	}
	if len(cfg.Passwd.Groups) > 0 {
		what = append(what, "passwd.groups")
	}
	if len(cfg.KernelArguments.ShouldExist)+len(cfg.KernelArguments.ShouldNotExist) > 0 {
		what = append(what, "kernelArguments")
	}
	if len(cfg.Ignition.Config.Merge) > 0 || cfg.Ignition.Config.Replace.Source != nil {
		what = append(what, "ignition.config.merge/replace (apply the full config)")
	}
	for _, f := range s.Files {
		if len(f.Append) > 0 {
			what = append(what, "storage.files["+f.Path+"].append")
		}
	}
	for _, l := range s.Links {
		if l.Hard != nil && *l.Hard {
			what = append(what, "storage.links["+l.Path+"].hard")
		}
	}
	if len(what) > 0 {
		return fmt.Errorf("ignition config uses what this applier does not implement: %s", strings.Join(what, ", "))
	}
	return nil
}

// ids maps user and group names on Root to their numbers.
type ids struct{ users, groups map[string]int }

func readIDs(root string) (ids, error) {
	u, err := readIDFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return ids{}, err
	}
	g, err := readIDFile(filepath.Join(root, "etc/group"))
	if err != nil {
		return ids{}, err
	}
	return ids{users: u, groups: g}, nil
}

// readIDFile reads name:x:id:... lines.
func readIDFile(path string) (map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ids: %w", err)
	}
	m := map[string]int{}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		if id, err := strconv.Atoi(f[2]); err == nil {
			m[f[0]] = id
		}
	}
	return m, nil
}

// owner resolves a node's user and group as Ignition does: unset is root.
func (i ids) owner(n types.Node) (uid, gid int, err error) {
	resolve := func(kind string, id *int, name *string, m map[string]int) (int, error) {
		if id != nil {
			return *id, nil
		}
		if name == nil || *name == "" {
			return 0, nil
		}
		v, ok := m[*name]
		if !ok {
			return 0, fmt.Errorf("%s %q does not exist", kind, *name)
		}
		return v, nil
	}
	if uid, err = resolve("user", n.User.ID, n.User.Name, i.users); err != nil {
		return 0, 0, err
	}
	gid, err = resolve("group", n.Group.ID, n.Group.Name, i.groups)
	return uid, gid, err
}

func (a Applier) path(p string) string { return filepath.Join(a.Root, p) }

// prepare creates missing parents (root-owned, 0755, as Ignition does) and
// removes what is at path when the node allows overwriting.
func (a Applier) prepare(n types.Node, defaultOverwrite bool) error {
	p := a.path(n.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	overwrite := defaultOverwrite
	if n.Overwrite != nil {
		overwrite = *n.Overwrite
	}
	if _, err := os.Lstat(p); err == nil {
		if !overwrite {
			return errors.New("exists and overwrite is false")
		}
		return os.RemoveAll(p)
	}
	return nil
}

func (a Applier) directory(i ids, d types.Directory) error {
	uid, gid, err := i.owner(d.Node)
	if err != nil {
		return err
	}
	p := a.path(d.Path)
	if err := os.MkdirAll(p, 0o755); err != nil {
		return err
	}
	if d.Mode != nil {
		if err := os.Chmod(p, fs.FileMode(*d.Mode)&fs.ModePerm|specialBits(*d.Mode)); err != nil {
			return err
		}
	}
	return os.Lchown(p, uid, gid)
}

func (a Applier) file(i ids, f types.File) error {
	uid, gid, err := i.owner(f.Node)
	if err != nil {
		return err
	}
	data, err := a.contents(f.Contents)
	if err != nil {
		return err
	}
	if err := a.prepare(f.Node, false); err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if f.Mode != nil {
		mode = fs.FileMode(*f.Mode)&fs.ModePerm | specialBits(*f.Mode)
	}
	p := a.path(f.Path)
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by umask
		return err
	}
	return os.Lchown(p, uid, gid)
}

// contents fetches a resource: data URLs inline, remote sources from
// Sources; then decompression and the verification hash.
func (a Applier) contents(r types.Resource) ([]byte, error) {
	if r.Source == nil {
		return nil, nil
	}
	src := *r.Source
	var data []byte
	if strings.HasPrefix(src, "data:") {
		u, err := dataurl.DecodeString(src)
		if err != nil {
			return nil, fmt.Errorf("decode data URL: %w", err)
		}
		data = u.Data
	} else {
		local, ok := a.Sources[src]
		if !ok {
			return nil, fmt.Errorf("source %s: no local stand-in given (Sources)", src)
		}
		b, err := os.ReadFile(local)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
		data = b
	}
	if r.Compression != nil && *r.Compression != "" {
		if *r.Compression != "gzip" {
			return nil, fmt.Errorf("compression %q not supported", *r.Compression)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
	}
	if r.Verification.Hash != nil {
		algo, want, _ := strings.Cut(*r.Verification.Hash, "-")
		if algo != "sha512" {
			return nil, fmt.Errorf("verification hash %q: only sha512 is implemented", *r.Verification.Hash)
		}
		sum := sha512.Sum512(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("verification failed: sha512 %s, config wants %s", got, want)
		}
	}
	return data, nil
}

func (a Applier) link(i ids, l types.Link) error {
	uid, gid, err := i.owner(l.Node)
	if err != nil {
		return err
	}
	if l.Target == nil {
		return errors.New("no target")
	}
	if err := a.prepare(l.Node, false); err != nil {
		return err
	}
	p := a.path(l.Path)
	if err := os.Symlink(*l.Target, p); err != nil {
		return err
	}
	return os.Lchown(p, uid, gid)
}

// units writes unit files and drop-ins under /etc/systemd/system, records
// enablement in PresetFile and applies it with `systemctl preset`, as a
// Fedora CoreOS first boot does.
func (a Applier) units(units []types.Unit) error {
	var presets []string
	var names []string
	for _, u := range units {
		dir := a.path("/etc/systemd/system")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if u.Contents != nil {
			if err := os.WriteFile(filepath.Join(dir, u.Name), []byte(*u.Contents), 0o644); err != nil {
				return fmt.Errorf("systemd.units %s: %w", u.Name, err)
			}
		}
		for _, d := range u.Dropins {
			dd := filepath.Join(dir, u.Name+".d")
			if err := os.MkdirAll(dd, 0o755); err != nil {
				return err
			}
			if d.Contents != nil {
				if err := os.WriteFile(filepath.Join(dd, d.Name), []byte(*d.Contents), 0o644); err != nil {
					return fmt.Errorf("systemd.units %s dropin %s: %w", u.Name, d.Name, err)
				}
			}
		}
		if u.Mask != nil && *u.Mask {
			p := filepath.Join(dir, u.Name)
			_ = os.Remove(p)
			if err := os.Symlink("/dev/null", p); err != nil {
				return fmt.Errorf("systemd.units %s: mask: %w", u.Name, err)
			}
			continue
		}
		if u.Enabled != nil {
			verb := "disable"
			if *u.Enabled {
				verb = "enable"
			}
			presets = append(presets, verb+" "+u.Name)
			names = append(names, u.Name)
		}
	}
	if len(presets) == 0 {
		return nil
	}
	sort.Strings(presets)
	pf := a.path(PresetFile)
	if err := os.MkdirAll(filepath.Dir(pf), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(pf, []byte(strings.Join(presets, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write presets: %w", err)
	}
	run := a.Systemctl
	if run == nil {
		run = func(args ...string) error {
			cmd := exec.Command("systemctl", append([]string{"--root=" + a.Root}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, out)
			}
			return nil
		}
	}
	return run(append([]string{"preset"}, names...)...)
}

// specialBits maps setuid/setgid/sticky from Ignition's numeric mode.
func specialBits(mode int) fs.FileMode {
	var m fs.FileMode
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
