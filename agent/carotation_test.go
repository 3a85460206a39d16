package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestCARotationUnderLoad: three agents rotate their CA while a writer
// runs, the way an operator does it, by rewriting the shared CA files:
// (1) ca.crt := [old, new] — every member restarts once to trust both;
// (2) ca.key := new — leaves are reissued from the new CA, no restart;
// (3) ca.crt := [new] — every member restarts once to drop the old CA.
// The restarts never overlap, no acknowledged write is lost, the history is
// linearizable, the members' hashes agree, and in the end every certificate
// chains to the new CA only and the old CA is refused.
func TestCARotationUnderLoad(t *testing.T) {
	t.Parallel()
	caRotation(t, newHarness(t))
}

// TestCARotationUnderLoadPodman is the rotation with every member in a
// container on the rootful test Podman socket: a restart is a container
// stop and start through the Podman API.
func TestCARotationUnderLoadPodman(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.usePodman()
	caRotation(t, h)
}

func caRotation(t *testing.T, h *harness) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	token := h.startDiscovery(ctx, 3)
	nodes := make([]*node, 3)
	for i := range nodes {
		cfg := h.config(i+1, 3, h.v3Discovery(token))
		nodes[i] = h.startWith(ctx, i+1, cfg, func(o *agent.Options) { o.CertCheckInterval = time.Second })
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	var endpoints []string
	for _, n := range nodes {
		endpoints = append(endpoints, n.agent.Report().ClientURL)
	}
	cli := reloadingClient(t, nodes[0].certDir(), endpoints)
	w := startWriter(t, cli, 2)
	time.Sleep(2 * time.Second)

	oldCert, oldKey := readFile(t, h.caCert), readFile(t, h.caKey)
	newCertPath, newKeyPath, err := pki.InitCA(filepath.Join(h.dir, "ca-new"), pki.CAOptions{CommonName: "etcd-agent CA 2"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	newCert, newKey := readFile(t, newCertPath), readFile(t, newKeyPath)
	newCA := pki.BundleCANames(newCert)[0]

	start := time.Now()
	// What `etcd-agent ca rotate` reads: every member's record. Before the
	// bundle, the new key and the drop of the old CA are refused.
	waitRotationRecords(t, cli, nodes, newCA, rollout.StepBundle)
	// 1. Trust bundle of old and new CA, still signing with the old key.
	writeAtomic(t, h.caCert, append(slices.Clone(oldCert), newCert...), 0o644)
	waitRotation(t, h, nodes, 1, oldCert, "step 1 (bundle [old, new])")
	waitRotationRecords(t, cli, nodes, newCA, rollout.StepNewKey)
	// 2. Sign with the new key: leaves reissued, no restart.
	writeAtomic(t, h.caKey, newKey, 0o600)
	waitRotation(t, h, nodes, 1, newCert, "step 2 (new key)")
	waitRotationRecords(t, cli, nodes, newCA, rollout.StepDropOld)
	// 3. Drop the old CA.
	writeAtomic(t, h.caCert, newCert, 0o644)
	waitRotation(t, h, nodes, 2, newCert, "step 3 (bundle [new])")
	waitRotationRecords(t, cli, nodes, newCA, 0)
	t.Logf("rotation took %s", time.Since(start).Round(time.Millisecond))

	// Restarts never overlapped: each ran from its ca-restart decision to
	// its ca-restarted one, under the membership lock.
	type span struct {
		node       int
		begin, end time.Time
	}
	var spans []span
	for _, n := range nodes {
		var open time.Time
		for _, d := range n.agent.Report().Decisions {
			switch d.Action {
			case report.ActionCARestart:
				open = d.At
			case report.ActionCARestarted:
				spans = append(spans, span{n.i, open, d.At})
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.begin.Compare(b.begin) })
	if len(spans) != 6 {
		t.Errorf("want 6 restarts, got %d: %v", len(spans), spans)
	}
	for i := 1; i < len(spans); i++ {
		if spans[i].begin.Before(spans[i-1].end) {
			t.Errorf("restarts overlap: node %d %s-%s and node %d %s-%s", spans[i-1].node, spans[i-1].begin.Format(time.StampMilli),
				spans[i-1].end.Format(time.StampMilli), spans[i].node, spans[i].begin.Format(time.StampMilli), spans[i].end.Format(time.StampMilli))
		}
	}
	for _, s := range spans {
		t.Logf("node %d restarted %s, took %s", s.node, s.begin.Format(time.StampMilli), s.end.Sub(s.begin).Round(time.Millisecond))
	}

	w.verify(t, cli)
	lintest.HashKVEqual(t, cli, endpoints)

	oldPool, newPool := certPool(t, oldCert), certPool(t, newCert)
	for _, n := range nodes {
		for _, f := range []string{pki.ServerCertFile, pki.PeerCertFile, pki.ClientCertFile, pki.OperatorCertFile} {
			c := loadCert(t, filepath.Join(n.certDir(), f))
			opts := x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
			opts.Roots = newPool
			if _, err := c.Verify(opts); err != nil {
				t.Errorf("node %d %s does not verify against the new CA: %v", n.i, f, err)
			}
			opts.Roots = oldPool
			if _, err := c.Verify(opts); err == nil {
				t.Errorf("node %d %s verifies against the old CA", n.i, f)
			}
		}
		for _, c := range n.agent.Report().Certs {
			if c.Issuer == "" || c.Issuer[:len("etcd-agent CA 2")] != "etcd-agent CA 2" {
				t.Errorf("node %d report: %s issued by %q, want the new CA", n.i, c.Role, c.Issuer)
			}
		}
		if r := n.agent.Report(); r.Phase != report.PhaseHealthy {
			t.Errorf("node %d: %s %q", n.i, r.Phase, r.Message)
		}
	}

	// A client that trusts only the old CA refuses the members' server
	// certificates; a client certificate from the old CA is refused.
	u, err := url.Parse(endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(nodes[0].certDir(), pki.ClientCertFile), filepath.Join(nodes[0].certDir(), pki.ClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: oldPool, Certificates: []tls.Certificate{pair}}); err == nil {
		conn.Close()
		t.Errorf("a client trusting only the old CA connected to %s", endpoints[0])
	}
	oldDir := filepath.Join(h.dir, "ca-old")
	writeAtomic(t, filepath.Join(oldDir, "ca.crt"), oldCert, 0o644)
	writeAtomic(t, filepath.Join(oldDir, "ca.key"), oldKey, 0o600)
	oldCA, err := pki.LoadCA(filepath.Join(oldDir, "ca.crt"), filepath.Join(oldDir, "ca.key"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	oldLeaves := filepath.Join(h.dir, "old-leaves")
	if _, err := oldCA.EnsureNodeCerts(pki.NodeRequest{Dir: oldLeaves, NodeIP: h.e.Addr(9), Validity: time.Hour, RenewBefore: time.Minute, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(oldLeaves, pki.CACertFile), newCert, 0o644) // trusts the servers
	tlsCfg, err := pki.ClientTLS(oldLeaves, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	oldCli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err == nil {
		gctx, gcancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = oldCli.Get(gctx, "health")
		gcancel()
		oldCli.Close()
	}
	if err == nil {
		t.Error("a client certificate from the old CA was accepted")
	}
}

// waitRotation waits until every node's ca.crt is what the CA files make
// now, its leaves are issued by signer, and its etcd restarted restarts
// times for the CA bundle.
func waitRotation(t *testing.T, h *harness, nodes []*node, restarts int, signer []byte, step string) {
	t.Helper()
	ca, err := pki.LoadCA(h.caCert, h.caKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := certPool(t, signer)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var missing []string
		for _, n := range nodes {
			if got := readFile(t, filepath.Join(n.certDir(), pki.CACertFile)); !bytes.Equal(got, ca.CertPEM) {
				missing = append(missing, n.cfg.Node.IP+": ca.crt")
			}
			c := loadCert(t, filepath.Join(n.certDir(), pki.ServerCertFile))
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				missing = append(missing, n.cfg.Node.IP+": leaves")
			}
			got := 0
			for _, d := range n.agent.Report().Decisions {
				if d.Action == report.ActionCARestarted {
					got++
				}
			}
			switch {
			case got > restarts:
				t.Fatalf("%s: node %d restarted %d times, want %d", step, n.i, got, restarts)
			case got < restarts:
				missing = append(missing, n.cfg.Node.IP+": restart ("+n.agent.Report().Message+")")
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not done within 90s: %v", step, missing)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeAtomic replaces path as config management does: a temporary file
// renamed over it.
func writeAtomic(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func certPool(t *testing.T, pemBytes []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in PEM")
	}
	return p
}

// waitRotationRecords waits until the members' CA records, as `etcd-agent
// ca rotate` reads them from the cluster, allow exactly step next (0: the
// rotation is complete) and refuse the step after it.
func waitRotationRecords(t *testing.T, cli *clientv3.Client, nodes []*node, newCA string, next int) {
	t.Helper()
	var names []string
	for _, n := range nodes {
		names = append(names, n.agent.Report().Name)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		states, err := rollout.ReadCAStates(ctx, cli)
		cancel()
		r := rollout.PlanRotation(names, states, newCA)
		if err == nil && r.Next == next {
			if next != 0 && next < rollout.StepDropOld {
				if err := r.Allows(next + 1); err == nil {
					t.Fatalf("step %d allowed while the members stand at %+v", next+1, r.Members)
				} else {
					t.Logf("ca rotate: step %d allowed, step %d refused: %v", next, next+1, err)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CA records: next step %d (%v), want %d: %+v", r.Next, err, next, r.Members)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
