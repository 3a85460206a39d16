package butane

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

// problems collects config.Problems; add records one.
type problems []config.Problem

func (ps *problems) add(field, value, problem, fix string) {
	*ps = append(*ps, config.Problem{Field: field, Value: value, Problem: problem, Fix: fix})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &config.Error{Problems: ps}
}

// userName is what useradd and the unit's User= accept (as in package systemd).
var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`)

// validate checks the defaulted spec's own fields. The discovery and etcd
// settings are checked by the agent's config loader (see agentConfig).
func (s Spec) validate(ps *problems) {
	if s.Variant != DefaultVariant {
		ps.add("variant", s.Variant, "is not supported", "use fcos (Fedora CoreOS)")
	} else if _, ok := ignitionVersions[s.Version]; !ok {
		ps.add("version", s.Version, "is not a supported fcos Butane version", "use 1.6.0 (Ignition 3.5.0) or 1.5.0 (Ignition 3.4.0)")
	}
	if n := s.Cluster.Size; n >= 1 && n%2 == 0 {
		ps.add("cluster.size", fmt.Sprint(n), fmt.Sprintf("is even: %d members tolerate no more failures than %d and need a larger quorum", n, n-1), "use 3 or 5")
	}

	s.Backup.validate(ps)
	s.Clients.validate(ps)
	s.Reboots.validate(ps)
	if q := s.Etcd.QuotaBackendBytes; q != "" {
		if _, err := config.ParseSize(q); err != nil {
			ps.add("etcd.quotaBackendBytes", q, "is not a size", "write it like 4GiB or 8589934592")
		}
	}

	switch {
	case s.Agent.URL == "":
		ps.add("agent.url", "", "is required", "set it to an https:// or s3:// URL of the etcd-agent linux binary")
	default:
		checkSourceURL(ps, "agent.url", s.Agent.URL, "the etcd-agent linux binary")
	}
	switch h := s.Agent.SHA512; {
	case h == "":
		ps.add("agent.sha512", "", "is required: Ignition verifies the download against it", "set it to the output of `sha512sum etcd-agent` (128 hex digits)")
	case len(h) != 128:
		ps.add("agent.sha512", h, fmt.Sprintf("has %d characters, a sha512 has 128 hex digits", len(h)), "copy the whole hash from `sha512sum etcd-agent`")
	default:
		if _, err := hex.DecodeString(h); err != nil {
			ps.add("agent.sha512", h, "is not hexadecimal", "copy the hash from `sha512sum etcd-agent`")
		}
	}

	if s.CA.Cert == "" {
		ps.add("ca.cert", "", "is required", "point it at ca.crt from `etcd-agent ca init`")
	}
	if s.CA.Key == "" {
		ps.add("ca.key", "", "is required: every node issues its own certificates from the CA", "point it at ca.key from `etcd-agent ca init`")
	}

	switch s.User {
	case "root":
		ps.add("user", s.User, "must not be root: the agent and Podman run rootless", "leave it unset for etcd-user")
	case "core":
		ps.add("user", s.User, "is Fedora CoreOS's admin user (sudo via wheel)", "leave it unset for etcd-user")
	default:
		if !userName.MatchString(s.User) {
			ps.add("user", s.User, "is not a valid user name", "use lower-case letters, digits, '_' or '-', e.g. etcd-user")
		}
	}

	if s.Pointer.URL != "" {
		checkSourceURL(ps, "pointer.url", s.Pointer.URL, "the full Ignition config")
	}
}

// checkSourceURL accepts the URL schemes Ignition fetches on EC2 with
// integrity: https:// and s3://bucket/key.
func checkSourceURL(ps *problems, field, raw, what string) {
	u, err := url.Parse(raw)
	fix := fmt.Sprintf("use https://host/path or s3://bucket/key for %s", what)
	switch {
	case err != nil:
		ps.add(field, raw, "is not a URL", fix)
	case u.Scheme == "s3":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			ps.add(field, raw, "must name a bucket and a key", "write it like s3://my-bucket/path/object")
		}
	case u.Scheme == "https":
		if u.Host == "" {
			ps.add(field, raw, "has no host", fix)
		}
	default:
		ps.add(field, raw, fmt.Sprintf("has scheme %q; only https and s3 are accepted", u.Scheme), fix)
	}
}
