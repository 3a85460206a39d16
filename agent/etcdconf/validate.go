package etcdconf

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// etcd's own limits and defaults used to check timing settings.
const (
	etcdDefaultHeartbeatMs = 100
	etcdDefaultElectionMs  = 1000
	etcdMaxElectionMs      = 50000
)

// Validate checks s and names the field (or extra flag) that is wrong. All
// problems are reported together.
func (s Spec) Validate() error {
	n := s.normalized()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch {
	case n.Name == "":
		add("name: required")
	case strings.ContainsAny(n.Name, "=,/ \t\n"):
		add("name %q: must not contain '=', ',', '/' or spaces (it goes into the initial cluster list)", n.Name)
	}
	if !filepath.IsAbs(n.DataDir) {
		add("dataDir %q: must be an absolute path", s.DataDir)
	}
	if !filepath.IsAbs(n.CertDir) {
		add("certDir %q: must be an absolute path", s.CertDir)
	}
	if !n.NodeIP.IsValid() || n.NodeIP.IsUnspecified() || n.NodeIP.IsMulticast() {
		add("nodeIP %q: must be a unicast address of this node", s.NodeIP)
	}
	for _, p := range []struct {
		field string
		port  int
	}{{"clientPort", n.ClientPort}, {"peerPort", n.PeerPort}} {
		if p.port < 1 || p.port > 65535 {
			add("%s %d: must be 1-65535", p.field, p.port)
		}
	}
	if n.ClientPort == n.PeerPort {
		add("clientPort and peerPort: both %d; they must differ", n.ClientPort)
	}
	errs = append(errs, n.validateBootstrap()...)
	errs = append(errs, n.validateTuning()...)
	for _, raw := range n.ExtraFlags {
		if err := CheckExtraFlag(raw); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("validate etcd spec: %w", err)
	}
	return nil
}

func (n Spec) validateBootstrap() []error {
	var errs []error
	switch n.InitialClusterState {
	case "", "new", "existing":
	default:
		errs = append(errs, fmt.Errorf("initialClusterState %q: must be \"new\" or \"existing\"", n.InitialClusterState))
	}
	if n.InitialCluster == "" {
		if n.InitialClusterState != "" {
			errs = append(errs, fmt.Errorf("initialClusterState %q: set only together with initialCluster", n.InitialClusterState))
		}
		return errs
	}
	m, err := types.NewURLsMap(n.InitialCluster)
	if err != nil {
		return append(errs, fmt.Errorf("initialCluster %q: want name=https://ip:port,...: %w", n.InitialCluster, err))
	}
	urls, ok := m[n.Name]
	if !ok {
		return append(errs, fmt.Errorf("initialCluster %q: has no entry for this member %q", n.InitialCluster, n.Name))
	}
	if n.NodeIP.IsValid() && !containsURL(urls.StringSlice(), n.PeerURL()) {
		errs = append(errs, fmt.Errorf("initialCluster: entry %s=%s does not match this member's peer URL %s", n.Name, urls.String(), n.PeerURL()))
	}
	for name, us := range m {
		for _, u := range us {
			if u.Scheme != "https" {
				errs = append(errs, fmt.Errorf("initialCluster: member %s has peer URL %s; peers speak TLS only (https)", name, u.String()))
			}
		}
	}
	return errs
}

func (n Spec) validateTuning() []error {
	var errs []error
	if n.QuotaBackendBytes < 0 {
		errs = append(errs, fmt.Errorf("quotaBackendBytes %d: must not be negative", n.QuotaBackendBytes))
	}
	switch n.AutoCompactionMode {
	case "periodic":
		if _, err := time.ParseDuration(n.AutoCompactionRetention); err != nil {
			if _, ierr := strconv.ParseUint(n.AutoCompactionRetention, 10, 32); ierr != nil {
				errs = append(errs, fmt.Errorf("autoCompactionRetention %q: want a duration like 1h (periodic mode)", n.AutoCompactionRetention))
			}
		}
	case "revision":
		if _, err := strconv.ParseUint(n.AutoCompactionRetention, 10, 64); err != nil {
			errs = append(errs, fmt.Errorf("autoCompactionRetention %q: want a revision count (revision mode)", n.AutoCompactionRetention))
		}
	default:
		errs = append(errs, fmt.Errorf("autoCompactionMode %q: must be \"periodic\" or \"revision\"", n.AutoCompactionMode))
	}
	hb, el := n.HeartbeatMs, n.ElectionMs
	if hb == 0 {
		hb = etcdDefaultHeartbeatMs
	}
	if el == 0 {
		el = etcdDefaultElectionMs
	}
	if el < 5*hb {
		errs = append(errs, fmt.Errorf("electionMs %d: must be at least 5 times heartbeatMs %d", el, hb))
	}
	if el > etcdMaxElectionMs {
		errs = append(errs, fmt.Errorf("electionMs %d: must be at most %d", el, etcdMaxElectionMs))
	}
	return errs
}

func containsURL(urls []string, want string) bool {
	for _, u := range urls {
		if u == want {
			return true
		}
	}
	return false
}
