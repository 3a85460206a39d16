package discovery

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// checkFormationRecords drives a FormationBook through a founder's life:
// nothing recorded, started (written once, kept on a rerun), formed (first
// record wins).
func checkFormationRecords(t *testing.T, book FormationBook, self, other Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := book.Formation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.Formed != nil || len(f.Started) != 0 {
		t.Fatalf("fresh registry has records: %+v", f)
	}
	first := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{first, first.Add(time.Hour)} {
		if err := book.RecordStarted(ctx, self, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := book.RecordFormed(ctx, Formed{ClusterID: "c1", By: self.Name, At: first}); err != nil {
		t.Fatal(err)
	}
	if err := book.RecordFormed(ctx, Formed{ClusterID: "c2", By: other.Name, At: first.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f, err = book.Formation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	selfID, _ := book.MemberID(self)
	otherID, _ := book.MemberID(other)
	if s, ok := f.Started[selfID]; !ok || !s.At.Equal(first) || s.Name != self.Name {
		t.Errorf("started record of %s = %+v (present %v), want the first one at %s", selfID, s, ok, first)
	}
	if _, ok := f.Started[otherID]; ok {
		t.Errorf("a started record for %s, which never started", other.Name)
	}
	if f.Formed == nil || f.Formed.ClusterID != "c1" || f.Formed.By != self.Name {
		t.Errorf("formed = %+v, want the first record (c1 by %s)", f.Formed, self.Name)
	}

	// A start that never ran is forgotten; forgetting twice is fine.
	for range 2 {
		if err := book.ForgetStarted(ctx, self); err != nil {
			t.Fatal(err)
		}
	}
	if f, err = book.Formation(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Started[selfID]; ok || f.Formed == nil {
		t.Errorf("after ForgetStarted: %+v, want no started record and the formed record kept", f)
	}
}

// TestV3FormationRecords: the records live beside the registry and etcd's
// own v3 discovery layout (what a plain etcd reads) does not see them.
func TestV3FormationRecords(t *testing.T) {
	ds := startDiscovery(t, newTestPKI(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token, err := NewToken(ctx, ds.Client, 3)
	if err != nil {
		t.Fatal(err)
	}
	ms := testMembers(2, 61)
	checkFormationRecords(t, ds.v3(t, token), ms[0], ms[1])

	size, regs, err := ShowToken(ctx, ds.Client, token)
	if err != nil || size != 3 || len(regs) != 0 {
		t.Fatalf("registry after formation records: size %d, %v, %v; want size 3 and no registrations", size, regs, err)
	}
	f, err := ReadFormation(ctx, ds.Client, token)
	if err != nil || f.Formed == nil {
		t.Fatalf("ReadFormation = %+v, %v", f, err)
	}
}

// TestV2FormationRecords runs the same against a real v2 keys API (etcd 3.5
// with --enable-v2): the records are hidden keys, absent from the listing
// that v2 discovery counts members in.
func TestV2FormationRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd 3.5 with the v2 API")
	}
	bin := binary(t, "ETCD_AGENT_TEST_ETCD_V2", "etcd-v2", "etcd-v2")
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", testnet.FreePort(t, "127.0.0.1"))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", testnet.FreePort(t, "127.0.0.1"))
	startProcess(t, bin, "--enable-v2", "--name", "v2", "--data-dir", filepath.Join(t.TempDir(), "v2"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "v2="+peerURL)
	registry := clientURL + "/v2/keys/_etcd/registry/formation"
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPut, registry+"/_config/size", strings.NewReader(url.Values{"value": {"3"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 etcd never took the size key: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ms := testMembers(2, 71)
	book := &V2{URL: registry}
	checkFormationRecords(t, book, ms[0], ms[1])

	c, err := newV2Client(registry, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := c.read(ctx)
	if err != nil || len(snap.Regs) != 0 || len(snap.Rejected) != 0 {
		t.Fatalf("v2 registry after formation records: %+v, %v; want no registrations", snap, err)
	}
	resp, err := c.do(ctx, http.MethodGet, "", url.Values{"recursive": {"true"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range resp.Node.Nodes {
		if strings.Contains(n.Key, "_agent") {
			t.Errorf("the registry listing shows %s: plain etcd's v2 discovery would count it as a member", n.Key)
		}
	}
}
