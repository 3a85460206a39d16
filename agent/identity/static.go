package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Static is a fixed identity, used by local mode (one node per loopback
// address, 127.0.0.x) and tests, where there is no instance metadata.
type Static struct {
	// IP is the node's private address; required.
	IP netip.Addr
	// Name is the etcd member name; "" means MemberName(IP).
	Name string
	// Hostname is the node's hostname; "" means Name (not os.Hostname, which
	// would be the same for every node of a local cluster).
	Hostname string
}

var _ Source = Static{}

// Identity returns the configured identity after checking that IP is a usable
// address.
func (s Static) Identity(ctx context.Context) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, fmt.Errorf("build static identity: %w", err)
	}
	switch {
	case !s.IP.IsValid():
		return Identity{}, errors.New("build static identity: IP is not set; give the node's private address, e.g. 127.0.0.1")
	case s.IP.IsUnspecified():
		return Identity{}, fmt.Errorf("build static identity: IP %s is unspecified; peers cannot reach it, give the node's private address", s.IP)
	}
	ip := s.IP.Unmap().WithZone("")
	id := Identity{
		Name:      s.Name,
		PrivateIP: ip,
		Hostname:  s.Hostname,
		Source:    SourceStatic,
	}
	if id.Name == "" {
		id.Name = MemberName(ip)
	}
	if id.Hostname == "" {
		id.Hostname = id.Name
	}
	return id, nil
}
