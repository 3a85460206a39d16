package pki

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// NodeRequest describes the certificates one node needs.
type NodeRequest struct {
	Dir      string     // node cert dir, created 0700 if missing
	NodeIP   netip.Addr // private IP
	Hostname string     // may be empty; added to the server cert as a DNS SAN
	// DNSNames are more DNS SANs for the server cert: the names clients
	// find the member by (its DNS record, the SRV domain). May be empty.
	DNSNames    []string
	Validity    time.Duration // leaf validity (e.g. 365 days), capped at the CA's NotAfter
	RenewBefore time.Duration // reissue when less than this remains (e.g. 30 days)
	Now         time.Time
}

// Actions reported in CertResult.Action.
const (
	ActionReused   = "reused"
	ActionIssued   = "issued"
	ActionReissued = "reissued"
)

// CertResult says what EnsureNodeCerts did with one certificate.
type CertResult struct {
	Role     string // server|peer|client|operator (or "ca" for NodeCerts.CA)
	CertPath string
	KeyPath  string // empty for the CA bundle
	NotAfter time.Time
	Action   string // "reused"|"issued"|"reissued"
	// Reason says why a pair was reissued, e.g. "IP changed: ...", "issued by
	// another CA", "expires in 10d < renew-before 30d", "key does not match
	// cert", "corrupt: ...". For a reused pair it is normally empty, or notes a
	// repair such as "key mode 0644 tightened to 0600".
	Reason string
}

// NodeCerts is the outcome of EnsureNodeCerts.
type NodeCerts struct {
	Dir   string
	Certs []CertResult // server, peer, client, operator, in that order
	CA    CertResult   // the ca.crt trust bundle in Dir
}

// RoleCA is the Role of NodeCerts.CA, the ca.crt trust bundle.
const RoleCA = "ca"

// EnsureNodeCerts writes or refreshes Dir/ca.crt and the four leaf pairs. It
// is safe to run on every start and periodically: pairs that are still good
// are left byte-identical.
//
// Write order for a reissued pair is key first, then certificate. A crash in
// between leaves a new key next to the old certificate; that is never used
// silently, because reuse requires the key to match the certificate's public
// key, so the next run reissues ("key does not match cert"). A TLS handshake
// that happens to load the pair in that window fails and the next one succeeds.
//
// A key file with group/other permission bits is tightened to 0600 in place
// (the pair is kept, Reason notes it); if chmod fails the pair is reissued,
// which writes a new 0600 key.
func (ca *CA) EnsureNodeCerts(req NodeRequest) (NodeCerts, error) {
	hostname, err := req.validate()
	if err != nil {
		return NodeCerts{}, fmt.Errorf("ensure node certs: %w", err)
	}
	extra, err := req.dnsNames()
	if err != nil {
		return NodeCerts{}, fmt.Errorf("ensure node certs: %w", err)
	}
	if err := checkCAValidAt(ca.Cert, req.Now); err != nil {
		return NodeCerts{}, fmt.Errorf("ensure node certs: %w", err)
	}
	if err := os.MkdirAll(req.Dir, dirMode); err != nil {
		return NodeCerts{}, fmt.Errorf("ensure node certs: create dir: %w", err)
	}
	out := NodeCerts{Dir: req.Dir}
	if out.CA, err = ca.ensureBundle(req.Dir); err != nil {
		return out, fmt.Errorf("ensure node certs: %w", err)
	}
	for _, spec := range nodeRoleSpecs(req.NodeIP.Unmap(), hostname, extra...) {
		res, err := ca.ensureLeaf(req, spec)
		if err != nil {
			return out, fmt.Errorf("ensure node certs: %w", err)
		}
		out.Certs = append(out.Certs, res)
	}
	return out, nil
}

// validate checks the request and returns the normalized hostname.
func (req NodeRequest) validate() (string, error) {
	switch {
	case req.Dir == "":
		return "", errors.New("node request: Dir is empty")
	case !req.NodeIP.IsValid() || req.NodeIP.IsUnspecified():
		return "", fmt.Errorf("node request: NodeIP %q is not a usable address", req.NodeIP)
	case req.Validity <= 0:
		return "", fmt.Errorf("node request: Validity %v must be positive", req.Validity)
	case req.RenewBefore < 0:
		return "", fmt.Errorf("node request: RenewBefore %v must not be negative", req.RenewBefore)
	case req.RenewBefore >= req.Validity:
		return "", fmt.Errorf("node request: RenewBefore (%s) must be shorter than Validity (%s), or every run reissues",
			fmtDuration(req.RenewBefore), fmtDuration(req.Validity))
	case req.Now.IsZero():
		return "", errors.New("node request: Now is not set")
	}
	h := strings.ToLower(strings.TrimSuffix(req.Hostname, "."))
	if _, err := netip.ParseAddr(h); err == nil {
		return h, nil // becomes an IP SAN
	}
	if r, ok := badDNSRune(h); ok {
		return "", fmt.Errorf("node request: Hostname %q contains %q, not valid in a DNS name", req.Hostname, r)
	}
	return h, nil
}

// dnsNames returns req.DNSNames normalized (lower case, no trailing dot).
func (req NodeRequest) dnsNames() ([]string, error) {
	var out []string
	for _, n := range req.DNSNames {
		d := strings.ToLower(strings.TrimSuffix(n, "."))
		if r, ok := badDNSRune(d); ok || d == "" {
			return nil, fmt.Errorf("node request: DNS name %q contains %q, not valid in a DNS name", n, r)
		}
		out = append(out, d)
	}
	return out, nil
}

// badDNSRune is the first rune of name not valid in a DNS name.
func badDNSRune(name string) (rune, bool) {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return r, true
		}
	}
	return 0, false
}

// ensureBundle makes Dir/ca.crt hold exactly ca.CertPEM.
func (ca *CA) ensureBundle(dir string) (CertResult, error) {
	res := CertResult{Role: RoleCA, CertPath: filepath.Join(dir, CACertFile), NotAfter: ca.Cert.NotAfter}
	have, err := os.ReadFile(res.CertPath)
	switch {
	case err == nil && bytes.Equal(have, ca.CertPEM):
		res.Action = ActionReused
		return res, nil
	case err == nil:
		res.Action, res.Reason = ActionReissued, "CA bundle changed"
	case errors.Is(err, fs.ErrNotExist):
		res.Action = ActionIssued
	default:
		res.Action, res.Reason = ActionReissued, fmt.Sprintf("unreadable: %v", err)
	}
	if err := writeFileAtomic(res.CertPath, ca.CertPEM, certFileMode); err != nil {
		return res, fmt.Errorf("write CA bundle: %w", err)
	}
	return res, nil
}

// ensureLeaf reuses or (re)issues one leaf pair.
func (ca *CA) ensureLeaf(req NodeRequest, spec roleSpec) (CertResult, error) {
	res := CertResult{
		Role:     spec.role,
		CertPath: filepath.Join(req.Dir, spec.certFile),
		KeyPath:  filepath.Join(req.Dir, spec.keyFile),
	}
	v := ca.inspect(spec, res.CertPath, res.KeyPath, req)
	if v.reuse {
		res.Action, res.NotAfter, res.Reason = ActionReused, v.cert.NotAfter, v.reason
		return res, nil
	}
	res.Action, res.Reason = ActionIssued, v.reason
	if v.existed {
		res.Action = ActionReissued
	}
	certPEM, keyPEM, cert, err := ca.issue(spec, req.Now, req.Validity)
	if err != nil {
		return res, err
	}
	// Key before cert; see EnsureNodeCerts for why a crash in between is safe.
	if err := writeFileAtomic(res.KeyPath, keyPEM, keyFileMode); err != nil {
		return res, fmt.Errorf("write %s key: %w", spec.role, err)
	}
	if err := writeFileAtomic(res.CertPath, certPEM, certFileMode); err != nil {
		return res, fmt.Errorf("write %s certificate: %w", spec.role, err)
	}
	res.NotAfter = cert.NotAfter
	return res, nil
}

// fmtDuration renders whole days as "30d", shorter spans as Go durations.
func fmtDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day || d <= -day {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.Round(time.Second).String()
}
