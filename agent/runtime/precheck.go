package runtime

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
)

// CheckPorts binds every address the member will listen on (client URLs and
// the peer URL) and releases it, so that a port already in use is reported
// before etcd starts, naming the port and, when it can be found, the process
// holding it. Call it only when no instance of this member runs.
func CheckPorts(spec etcdconf.Spec) error {
	type want struct{ role, url string }
	var wants []want
	for _, u := range spec.ListenClientURLs() {
		wants = append(wants, want{"client", u})
	}
	wants = append(wants, want{"peer", spec.PeerURL()})
	var errs []error
	for _, w := range wants {
		u, err := url.Parse(w.url)
		if err != nil {
			return fmt.Errorf("check ports: parse %s url %q: %w", w.role, w.url, err)
		}
		ln, err := net.Listen("tcp", u.Host)
		if err != nil {
			errs = append(errs, portInUse(w.role, u.Host, err))
			continue
		}
		if err := ln.Close(); err != nil {
			return fmt.Errorf("check ports: release %s: %w", u.Host, err)
		}
	}
	return errors.Join(errs...)
}

func portInUse(role, hostPort string, err error) error {
	ap, perr := netip.ParseAddrPort(hostPort)
	if perr != nil {
		return fmt.Errorf("%s port %s is not available: %w", role, hostPort, err)
	}
	field := "etcd.clientPort"
	if role == "peer" {
		field = "etcd.peerPort"
	}
	who := "another process"
	if o, ok := findPortOwner(ap); ok {
		who = o
	}
	return fmt.Errorf("%s port %s is already in use by %s: stop it or change %s: %w", role, hostPort, who, field, err)
}

// CheckDataDir creates dir (0700) if needed and proves it is writable by
// creating and removing a probe file.
func CheckDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s is not usable: %w", dir, err)
	}
	probe := filepath.Join(dir, ".etcd-agent-probe-"+strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(probe, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w; fix its owner/permissions (etcd needs rwx for the agent's user)", dir, err)
	}
	_, werr := f.Write([]byte("probe\n"))
	cerr := f.Close()
	rerr := os.Remove(probe)
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	if rerr != nil {
		return fmt.Errorf("data dir %s: remove probe: %w", dir, rerr)
	}
	return nil
}
