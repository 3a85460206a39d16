package identity

import (
	"context"
	"net/netip"
	"strings"
)

// Source values for [Identity.Source].
const (
	SourceIMDS   = "imds"
	SourceStatic = "static"
)

// Identity describes this node.
type Identity struct {
	// Name is the etcd member name, derived with [MemberName] unless a static
	// source overrides it.
	Name string
	// PrivateIP is the address etcd listens on and advertises to peers and
	// clients.
	PrivateIP netip.Addr
	// PublicIP is the instance's public IPv4 address; the zero (invalid) Addr
	// when the instance has none.
	PublicIP netip.Addr
	// InstanceID is the EC2 instance id, e.g. "i-0123456789abcdef0"; empty
	// for a static identity.
	InstanceID string
	// AvailabilityZone is e.g. "eu-west-1b"; empty for a static identity.
	AvailabilityZone string
	// Region is e.g. "eu-west-1"; empty for a static identity.
	Region string
	// Hostname is the node's private DNS name, used as a server certificate SAN.
	Hostname string
	// Source says where the identity came from: [SourceIMDS] or [SourceStatic].
	Source string
}

// Source yields this node's identity.
type Source interface {
	Identity(ctx context.Context) (Identity, error)
}

// MemberName derives the etcd member name from the node's private IP:
// "etcd-10-0-1-5" for 10.0.1.5; IPv6 colons become dashes as well
// ("etcd-fd00--1" for fd00::1). An IPv4-mapped IPv6 address is named after
// its IPv4 form, and a zone is dropped. It returns "" for an invalid address.
//
// The name is IP-based on purpose. An EC2 replacement instance gets a new
// private IP, so it becomes a new member, never confused with the one it
// replaces. An instance that keeps its IP but lost its disk (or a new instance
// reusing a pinned IP) finds a member with its own name and peer URL in the
// cluster and can recognise it as its past self, to be removed and re-added.
// Instance ids would break the second case; hostnames on EC2 are derived from
// the IP anyway.
func MemberName(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	return "etcd-" + strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
}
