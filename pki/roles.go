package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Roles of the leaf certificates, as reported in CertResult.Role.
const (
	RoleServer   = "server"
	RolePeer     = "peer"
	RoleClient   = "client"
	RoleOperator = "operator"
)

// roleSpec is everything that decides what one leaf certificate must contain.
// Reuse checks compare an existing certificate against it field by field.
type roleSpec struct {
	role     string
	certFile string
	keyFile  string
	cn       string
	usages   []x509.ExtKeyUsage
	ips      []netip.Addr // sorted, unique
	dns      []string     // sorted, unique, lower case
}

// nodeRoleSpecs returns the four leaf specs for a node, in a fixed order.
//
// Server and peer CNs carry only the node IP, so a hostname change touches
// the server cert (its DNS SAN) and nothing else; so does a change of the
// extra DNS names clients use (extraDNS).
func nodeRoleSpecs(ip netip.Addr, hostname string, extraDNS ...string) []roleSpec {
	serverAndClient := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	loopback := netip.MustParseAddr("127.0.0.1")
	serverIPs := []netip.Addr{ip, loopback}
	// etcd checks a peer's client certificate against the connection's
	// source address. Between members on one machine (local mode, tests on
	// 127.0.0.x) connections leave from 127.0.0.1 whatever the member's own
	// address, so a loopback member's peer cert names 127.0.0.1 too.
	peerIPs := []netip.Addr{ip}
	if ip.IsLoopback() && ip.Is4() {
		peerIPs = uniqueAddrs([]netip.Addr{ip, loopback})
	}
	serverDNS := append([]string{"localhost"}, extraDNS...)
	if hostname != "" {
		if a, err := netip.ParseAddr(hostname); err == nil {
			serverIPs = append(serverIPs, a.Unmap())
		} else {
			serverDNS = append(serverDNS, hostname)
		}
	}
	return []roleSpec{
		{
			role: RoleServer, certFile: ServerCertFile, keyFile: ServerKeyFile,
			cn: "etcd-server-" + ip.String(), usages: serverAndClient,
			ips: uniqueAddrs(serverIPs), dns: uniqueStrings(serverDNS),
		},
		{
			role: RolePeer, certFile: PeerCertFile, keyFile: PeerKeyFile,
			cn: PeerCommonName, usages: serverAndClient,
			ips: peerIPs,
		},
		{
			role: RoleClient, certFile: ClientCertFile, keyFile: ClientKeyFile,
			cn: AgentCommonName, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			role: RoleOperator, certFile: OperatorCertFile, keyFile: OperatorKeyFile,
			cn: OperatorCommonName, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
	}
}

// template is the unsigned certificate for the spec (no serial, no validity).
func (s roleSpec) template() *x509.Certificate {
	t := &x509.Certificate{
		Subject:               pkix.Name{CommonName: s.cn},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           slices.Clone(s.usages),
		BasicConstraintsValid: true,
		DNSNames:              slices.Clone(s.dns),
	}
	for _, a := range s.ips {
		t.IPAddresses = append(t.IPAddresses, net.IP(a.AsSlice()))
	}
	return t
}

// checkSANs reports why cert's SANs differ from the spec, or "" when exact.
func (s roleSpec) checkSANs(cert *x509.Certificate) string {
	var have []netip.Addr
	for _, ip := range cert.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return fmt.Sprintf("IP changed: invalid IP SAN %v", ip)
		}
		have = append(have, a.Unmap())
	}
	have = uniqueAddrs(have)
	if !slices.Equal(have, s.ips) || len(have) != len(cert.IPAddresses) {
		return fmt.Sprintf("IP changed: cert has IP SANs %v, want %v", have, s.ips)
	}
	var haveDNS []string
	for _, d := range cert.DNSNames {
		haveDNS = append(haveDNS, strings.ToLower(d))
	}
	haveDNS = uniqueStrings(haveDNS)
	if !slices.Equal(haveDNS, s.dns) || len(haveDNS) != len(cert.DNSNames) {
		return fmt.Sprintf("hostname changed: cert has DNS SANs %v, want %v", haveDNS, s.dns)
	}
	if len(cert.URIs) > 0 || len(cert.EmailAddresses) > 0 {
		return "unexpected URI or email SANs"
	}
	return ""
}

func uniqueAddrs(in []netip.Addr) []netip.Addr {
	out := slices.Clone(in)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func uniqueStrings(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
