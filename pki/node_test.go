package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var leafFiles = map[string][2]string{
	RoleServer:   {ServerCertFile, ServerKeyFile},
	RolePeer:     {PeerCertFile, PeerKeyFile},
	RoleClient:   {ClientCertFile, ClientKeyFile},
	RoleOperator: {OperatorCertFile, OperatorKeyFile},
}

func TestEnsureNodeCertsFirstThenReuse(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, t0, 0)
	dir := filepath.Join(t.TempDir(), "node", "pki")
	req := testRequest(dir)

	first, err := ca.EnsureNodeCerts(req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Dir != dir || len(first.Certs) != 4 {
		t.Fatalf("result = %+v", first)
	}
	for i, role := range []string{RoleServer, RolePeer, RoleClient, RoleOperator} {
		r := first.Certs[i]
		files := leafFiles[role]
		if r.Role != role || r.Action != ActionIssued || r.Reason != "" ||
			r.CertPath != filepath.Join(dir, files[0]) || r.KeyPath != filepath.Join(dir, files[1]) {
			t.Errorf("cert %d = %+v, want freshly issued %s", i, r, role)
		}
		if want := t0.Add(req.Validity); !r.NotAfter.Equal(want) {
			t.Errorf("%s NotAfter = %v, want %v", role, r.NotAfter, want)
		}
		if m := mode(t, r.KeyPath); m != 0o600 {
			t.Errorf("%s key mode %#o, want 0600", role, m)
		}
		if m := mode(t, r.CertPath); m != 0o644 {
			t.Errorf("%s cert mode %#o, want 0644", role, m)
		}
	}
	if first.CA.Action != ActionIssued || first.CA.Role != RoleCA {
		t.Errorf("CA bundle result = %+v", first.CA)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("node dir mode %#o, want 0700", m)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, CACertFile)); string(b) != string(ca.CertPEM) {
		t.Error("ca.crt differs from the CA's CertPEM")
	}
	before := snapshot(t, dir)
	if len(before) != 9 {
		t.Errorf("dir holds %d files, want 9 (no temp files): %v", len(before), slices.Sorted(mapKeys(before)))
	}

	// Second run, a day later: everything reused, byte-identical.
	req.Now = t0.Add(day)
	second, err := ca.EnsureNodeCerts(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(second.Certs, second.CA) {
		if r.Action != ActionReused || r.Reason != "" {
			t.Errorf("second run %s: %s (%s), want reused", r.Role, r.Action, r.Reason)
		}
	}
	after := snapshot(t, dir)
	for name, b := range before {
		if string(after[name]) != string(b) {
			t.Errorf("%s changed on the second run", name)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestEnsureNodeCertsContents(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, t0, 0)
	dir := t.TempDir()
	if _, err := ca.EnsureNodeCerts(testRequest(dir)); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	clientOnly := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tests := []struct {
		role     string
		cn       string
		usages   []x509.ExtKeyUsage
		wrongUse []x509.ExtKeyUsage // must NOT verify for these
		ips      []string
		dns      []string
	}{
		{RoleServer, "etcd-server-10.0.1.5", both, nil, []string{"10.0.1.5", "127.0.0.1"}, []string{"ip-10-0-1-5.ec2.internal", "localhost"}},
		{RolePeer, "etcd-peer", both, nil, []string{"10.0.1.5"}, nil},
		{RoleClient, "etcd-agent", clientOnly, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil, nil},
		{RoleOperator, "etcd-operator", clientOnly, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil, nil},
	}
	serials := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			c := mustLoadCert(t, filepath.Join(dir, leafFiles[tt.role][0]))
			for _, u := range tt.usages {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
					t.Errorf("verify for usage %v: %v", u, err)
				}
			}
			for _, u := range tt.wrongUse {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{u}}); err == nil {
					t.Errorf("verifies for usage %v, want rejection", u)
				}
			}
			if !slices.Equal(c.ExtKeyUsage, tt.usages) {
				t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, tt.usages)
			}
			if c.Subject.CommonName != tt.cn {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tt.cn)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			slices.Sort(ips)
			if !slices.Equal(ips, tt.ips) {
				t.Errorf("IP SANs = %v, want exactly %v", ips, tt.ips)
			}
			dns := slices.Sorted(slices.Values(c.DNSNames))
			if !slices.Equal(dns, tt.dns) || len(c.URIs)+len(c.EmailAddresses) != 0 {
				t.Errorf("DNS SANs = %v (+%d URI/email), want exactly %v", dns, len(c.URIs)+len(c.EmailAddresses), tt.dns)
			}
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
			}
			if c.IsCA {
				t.Error("leaf is a CA")
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || serials[c.SerialNumber.String()] {
				t.Errorf("serial %v not a fresh positive 128-bit number", c.SerialNumber)
			}
			serials[c.SerialNumber.String()] = true
			if !c.NotBefore.Equal(t0.Add(-5*time.Minute)) || !c.NotAfter.Equal(t0.Add(365*day)) {
				t.Errorf("validity %v..%v, want now-5m..now+365d", c.NotBefore, c.NotAfter)
			}
			key, err := readKeyFile(filepath.Join(dir, leafFiles[tt.role][1]))
			if err != nil || !publicKeyMatches(c.PublicKey, key) {
				t.Errorf("key file does not match cert (%v)", err)
			}
		})
	}
}

// TestEnsureNodeCertsChanges runs once at t0, applies a change, runs again
// and checks which roles were reissued and why; a third run must reuse all.
func TestEnsureNodeCertsChanges(t *testing.T) {
	t.Parallel()
	type want struct {
		action string
		reason string // substring
	}
	reused := want{ActionReused, ""}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, req *NodeRequest, ca **CA)
		want   map[string]want
		wantCA string // action for ca.crt
	}{
		{
			name:   "IP change reissues server and peer",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) { r.NodeIP = netip.MustParseAddr("10.0.2.9") },
			want: map[string]want{
				RoleServer: {ActionReissued, "IP changed"}, RolePeer: {ActionReissued, "IP changed"},
				RoleClient: reused, RoleOperator: reused,
			},
		},
		{
			name:   "hostname change reissues server only",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) { r.Hostname = "etcd-a.internal" },
			want: map[string]want{
				RoleServer: {ActionReissued, "hostname changed"}, RolePeer: reused, RoleClient: reused, RoleOperator: reused,
			},
		},
		{
			name:   "hostname removed reissues server only",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) { r.Hostname = "" },
			want: map[string]want{
				RoleServer: {ActionReissued, "hostname changed"}, RolePeer: reused, RoleClient: reused, RoleOperator: reused,
			},
		},
		{
			name: "client DNS names added reissue server only",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) {
				r.DNSNames = []string{"etcd-10-0-1-5.etcd.example.com", "etcd.example.com"}
			},
			want: map[string]want{
				RoleServer: {ActionReissued, "hostname changed: cert has DNS SANs [ip-10-0-1-5.ec2.internal localhost], want [etcd-10-0-1-5.etcd.example.com etcd.example.com ip-10-0-1-5.ec2.internal localhost]"},
				RolePeer:   reused, RoleClient: reused, RoleOperator: reused,
			},
		},
		{
			name:   "hostname case and trailing dot are not a change",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) { r.Hostname = "IP-10-0-1-5.EC2.internal." },
			want:   map[string]want{RoleServer: reused, RolePeer: reused, RoleClient: reused, RoleOperator: reused},
		},
		{
			name:   "new CA reissues all",
			change: func(t *testing.T, _ string, _ *NodeRequest, ca **CA) { *ca = newTestCA(t, t0, 0) },
			want: map[string]want{
				RoleServer: {ActionReissued, "issued by another CA"}, RolePeer: {ActionReissued, "issued by another CA"},
				RoleClient: {ActionReissued, "issued by another CA"}, RoleOperator: {ActionReissued, "issued by another CA"},
			},
			wantCA: ActionReissued,
		},
		{
			name:   "near expiry renews all",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) { r.Now = t0.Add(340 * day) },
			want: map[string]want{
				RoleServer: {ActionReissued, "expires in 25d < renew-before 30d"}, RolePeer: {ActionReissued, "expires in 25d"},
				RoleClient: {ActionReissued, "expires in 25d"}, RoleOperator: {ActionReissued, "expires in 25d"},
			},
		},
		{
			name:   "just outside renew window reuses",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) { r.Now = t0.Add(334 * day) },
			want:   map[string]want{RoleServer: reused, RolePeer: reused, RoleClient: reused, RoleOperator: reused},
		},
		{
			name:   "expired reissues all",
			change: func(t *testing.T, _ string, r *NodeRequest, _ **CA) { r.Now = t0.Add(400 * day) },
			want: map[string]want{
				RoleServer: {ActionReissued, "expired at"}, RolePeer: {ActionReissued, "expired at"},
				RoleClient: {ActionReissued, "expired at"}, RoleOperator: {ActionReissued, "expired at"},
			},
		},
		{
			name: "corrupt cert file",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				writeFile(t, filepath.Join(dir, ServerCertFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
				writeFile(t, filepath.Join(dir, ClientCertFile), []byte{}, 0o644)
			},
			want: map[string]want{
				RoleServer: {ActionReissued, "corrupt"}, RolePeer: reused,
				RoleClient: {ActionReissued, "corrupt"}, RoleOperator: reused,
			},
		},
		{
			name: "corrupt key file",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				writeFile(t, filepath.Join(dir, PeerKeyFile), []byte("not a key"), 0o600)
			},
			want: map[string]want{RoleServer: reused, RolePeer: {ActionReissued, "key corrupt"}, RoleClient: reused, RoleOperator: reused},
		},
		{
			name: "swapped key",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				copyFile(t, filepath.Join(dir, PeerKeyFile), filepath.Join(dir, ServerKeyFile))
			},
			want: map[string]want{
				RoleServer: {ActionReissued, "key does not match cert"}, RolePeer: reused, RoleClient: reused, RoleOperator: reused,
			},
		},
		{
			name: "missing key or cert",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				remove(t, filepath.Join(dir, ClientKeyFile))
				remove(t, filepath.Join(dir, OperatorCertFile))
			},
			want: map[string]want{
				RoleServer: reused, RolePeer: reused,
				RoleClient: {ActionReissued, "key file missing"}, RoleOperator: {ActionReissued, "cert file missing"},
			},
		},
		{
			name: "pair deleted is issued again",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				remove(t, filepath.Join(dir, OperatorCertFile))
				remove(t, filepath.Join(dir, OperatorKeyFile))
				remove(t, filepath.Join(dir, CACertFile))
			},
			want:   map[string]want{RoleServer: reused, RolePeer: reused, RoleClient: reused, RoleOperator: {ActionIssued, ""}},
			wantCA: ActionIssued,
		},
		{
			name: "another role's pair in place",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				copyFile(t, filepath.Join(dir, ClientCertFile), filepath.Join(dir, OperatorCertFile))
				copyFile(t, filepath.Join(dir, ClientKeyFile), filepath.Join(dir, OperatorKeyFile))
				copyFile(t, filepath.Join(dir, ClientCertFile), filepath.Join(dir, PeerCertFile))
				copyFile(t, filepath.Join(dir, ClientKeyFile), filepath.Join(dir, PeerKeyFile))
			},
			want: map[string]want{
				RoleServer: reused, RolePeer: {ActionReissued, "does not verify"},
				RoleClient: reused, RoleOperator: {ActionReissued, "subject changed"},
			},
		},
		{
			name: "loose key mode is tightened in place",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				chmod(t, filepath.Join(dir, ServerKeyFile), 0o644)
			},
			want: map[string]want{
				RoleServer: {ActionReused, "key mode 0644 tightened to 0600"}, RolePeer: reused, RoleClient: reused, RoleOperator: reused,
			},
		},
		{
			name: "CA bundle edited",
			change: func(t *testing.T, dir string, _ *NodeRequest, _ **CA) {
				writeFile(t, filepath.Join(dir, CACertFile), []byte("stale"), 0o644)
			},
			want:   map[string]want{RoleServer: reused, RolePeer: reused, RoleClient: reused, RoleOperator: reused},
			wantCA: ActionReissued,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t, t0.Add(-time.Hour), 0)
			dir := t.TempDir()
			req := testRequest(dir)
			if _, err := ca.EnsureNodeCerts(req); err != nil {
				t.Fatal(err)
			}
			tt.change(t, dir, &req, &ca)
			before := snapshot(t, dir)

			got, err := ca.EnsureNodeCerts(req)
			if err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, dir)
			for role, r := range byRole(t, got) {
				w := tt.want[role]
				if r.Action != w.action || !strings.Contains(r.Reason, w.reason) || (w.reason == "" && r.Reason != "") {
					t.Errorf("%s: %s %q, want %s %q", role, r.Action, r.Reason, w.action, w.reason)
				}
				files := leafFiles[role]
				changed := string(before[files[0]]) != string(after[files[0]]) || string(before[files[1]]) != string(after[files[1]])
				if changed != (r.Action != ActionReused) {
					t.Errorf("%s: action %s but files changed=%v", role, r.Action, changed)
				}
				if m := mode(t, r.KeyPath); m != 0o600 {
					t.Errorf("%s key mode %#o after run, want 0600", role, m)
				}
				if m := mode(t, r.CertPath); m != 0o644 {
					t.Errorf("%s cert mode %#o after run, want 0644", role, m)
				}
			}
			wantCA := tt.wantCA
			if wantCA == "" {
				wantCA = ActionReused
			}
			if got.CA.Action != wantCA {
				t.Errorf("ca.crt: %s %q, want %s", got.CA.Action, got.CA.Reason, wantCA)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, CACertFile)); string(b) != string(ca.CertPEM) {
				t.Error("ca.crt does not hold the current CA")
			}

			// Converged: one more run changes nothing.
			third, err := ca.EnsureNodeCerts(req)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range append(third.Certs, third.CA) {
				if r.Action != ActionReused || r.Reason != "" {
					t.Errorf("third run %s: %s %q, want reused", r.Role, r.Action, r.Reason)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(to)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, b, fi.Mode().Perm())
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestEnsureNodeCertsCappedAtCA: leaves never outlive the CA, and a CA that
// expires within RenewBefore does not make every run reissue.
func TestEnsureNodeCertsCappedAtCA(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, t0, 100*day)
	req := testRequest(t.TempDir())
	first, err := ca.EnsureNodeCerts(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range first.Certs {
		if !r.NotAfter.Equal(ca.Cert.NotAfter) {
			t.Errorf("%s NotAfter %v, want capped at CA %v", r.Role, r.NotAfter, ca.Cert.NotAfter)
		}
	}
	req.Now = t0.Add(80 * day) // 20d left < 30d renew-before, but the CA ends then too
	second, err := ca.EnsureNodeCerts(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range second.Certs {
		if r.Action != ActionReused {
			t.Errorf("%s %s (%s), want reused: a new cert could not last longer", r.Role, r.Action, r.Reason)
		}
	}
	req.Now = t0.Add(101 * day)
	if _, err := ca.EnsureNodeCerts(req); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired CA: err = %v, want refusal", err)
	}
}

// TestEnsureNodeCertsLoopbackNode covers local mode: node IP 127.0.0.1 and
// hostname localhost must not produce duplicate SANs.
func TestEnsureNodeCertsLoopbackNode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip, hostname string
		wantIPs      []string
		wantDNS      []string
	}{
		{"127.0.0.1", "localhost", []string{"127.0.0.1"}, []string{"localhost"}},
		{"127.0.0.3", "", []string{"127.0.0.1", "127.0.0.3"}, []string{"localhost"}},
		{"10.0.1.5", "10.0.1.5", []string{"10.0.1.5", "127.0.0.1"}, []string{"localhost"}},
		{"fd00::5", "node5", []string{"127.0.0.1", "fd00::5"}, []string{"localhost", "node5"}},
	}
	ca := newTestCA(t, t0, 0)
	for _, tt := range tests {
		t.Run(tt.ip+"/"+tt.hostname, func(t *testing.T) {
			t.Parallel()
			req := testRequest(t.TempDir())
			req.NodeIP, req.Hostname = netip.MustParseAddr(tt.ip), tt.hostname
			if _, err := ca.EnsureNodeCerts(req); err != nil {
				t.Fatal(err)
			}
			c := mustLoadCert(t, filepath.Join(req.Dir, ServerCertFile))
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if slices.Sort(ips); !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IP SANs %v, want %v", ips, tt.wantIPs)
			}
			if dns := slices.Sorted(slices.Values(c.DNSNames)); !slices.Equal(dns, tt.wantDNS) {
				t.Errorf("DNS SANs %v, want %v", dns, tt.wantDNS)
			}
			// A loopback member's peer connections leave from 127.0.0.1.
			wantPeer := []string{tt.ip}
			if ip := netip.MustParseAddr(tt.ip); ip.IsLoopback() && tt.ip != "127.0.0.1" {
				wantPeer = []string{"127.0.0.1", tt.ip}
			}
			p := mustLoadCert(t, filepath.Join(req.Dir, PeerCertFile))
			var peerIPs []string
			for _, ip := range p.IPAddresses {
				peerIPs = append(peerIPs, ip.String())
			}
			if slices.Sort(peerIPs); !slices.Equal(peerIPs, wantPeer) || len(p.DNSNames) != 0 {
				t.Errorf("peer SANs %v %v, want only %v", p.IPAddresses, p.DNSNames, wantPeer)
			}
			again, err := ca.EnsureNodeCerts(req)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range again.Certs {
				if r.Action != ActionReused {
					t.Errorf("rerun %s: %s (%s)", r.Role, r.Action, r.Reason)
				}
			}
		})
	}
}

func TestEnsureNodeCertsBadRequest(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, t0, 0)
	tests := []struct {
		name   string
		mutate func(*NodeRequest)
		want   string
	}{
		{"no dir", func(r *NodeRequest) { r.Dir = "" }, "Dir is empty"},
		{"no IP", func(r *NodeRequest) { r.NodeIP = netip.Addr{} }, "NodeIP"},
		{"unspecified IP", func(r *NodeRequest) { r.NodeIP = netip.IPv4Unspecified() }, "NodeIP"},
		{"zero validity", func(r *NodeRequest) { r.Validity = 0 }, "Validity"},
		{"negative renew", func(r *NodeRequest) { r.RenewBefore = -day }, "RenewBefore"},
		{"renew >= validity", func(r *NodeRequest) { r.RenewBefore = r.Validity }, "must be shorter than Validity"},
		{"no time", func(r *NodeRequest) { r.Now = time.Time{} }, "Now is not set"},
		{"bad hostname", func(r *NodeRequest) { r.Hostname = "bad host" }, "Hostname"},
		{"bad DNS name", func(r *NodeRequest) { r.DNSNames = []string{"etcd example.com"} }, `DNS name "etcd example.com"`},
		{"CA not yet valid", func(r *NodeRequest) { r.Now = t0.Add(-time.Hour) }, "not valid until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := testRequest(filepath.Join(t.TempDir(), "pki"))
			tt.mutate(&req)
			_, err := ca.EnsureNodeCerts(req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if req.Dir != "" {
				if _, err := os.Stat(req.Dir); err == nil {
					t.Error("dir created for a rejected request")
				}
			}
		})
	}
}
