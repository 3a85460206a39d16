package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/features"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/status"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestDivergence changes one member's data behind etcd's back, as a bad disk
// or a bug would, and shows that the divergence is detected: when the member
// runs anyway (started with etcd's initial corruption check off), both
// `status` and hashcheck.CompareHashKV report the mismatch and name it; and
// etcd refuses to start the member with the agent's configuration (etcdconf
// turns the initial corruption check on).
func TestDivergence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1), b.IP(2), b.IP(3))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t),
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("diverge/k%d", i), "original"); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	for i := range c.Members {
		if err := c.WaitLinearizable(ctx, i); err != nil {
			t.Fatal(err)
		}
	}

	// Before: the exported check agrees with itself on the healthy cluster.
	if hc := hashcheck.CompareHashKV(ctx, cli, nil); hc.Mismatch || !strings.HasPrefix(hc.Description, "HashKV equal on 3 members at revision ") {
		t.Fatalf("healthy cluster: %+v", hc)
	}

	victim := (c.Leader() + 1) % len(c.Members) // a follower: no election needed
	m := c.Members[victim]
	c.Stop(victim)
	rewriteValue(t, filepath.Join(m.DataDir, "member", "snap", "db"), "diverge/k3", "changed behind etcd's back")

	// Started with the initial check off, the diverged replica serves, and
	// only a comparison shows it.
	cfg := c.Config(victim)
	if err := cfg.ServerFeatureGate.(featuregate.MutableFeatureGate).Set("InitialCorruptCheck=false"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartMember(victim, cfg); err != nil {
		t.Fatalf("start the diverged member without the check: %v", err)
	}
	if err := c.WaitLinearizable(ctx, victim); err != nil {
		t.Fatal(err)
	}

	t.Run("status reports the mismatch", func(t *testing.T) {
		v := gather(t, c, c.Endpoints()[:1], liveReport(c, time.Now()), nil)
		h := v.HashKV
		if !h.Mismatch {
			t.Fatalf("no mismatch found: %+v", h)
		}
		want := fmt.Sprintf("HashKV MISMATCH at revision %d (never compacted): ", h.Revision)
		if !strings.HasPrefix(h.Description, want) || !strings.HasSuffix(h.Description, "; "+m.Name+" has "+hashOf(v, m.Name)) {
			t.Errorf("description %q, want it to start with %q and single out %s", h.Description, want, m.Name)
		}
		if !hasProblem(v, "HashKV MISMATCH", "replicas diverged") || v.Summary.Healthy {
			t.Errorf("summary %+v, want unhealthy with a HashKV problem", v.Summary)
		}
		if code := status.ExitCode(v); code != status.ExitUnhealthy {
			t.Errorf("ExitCode = %d, want %d", code, status.ExitUnhealthy)
		}
		// Every member answered and agrees on the revision: all compared.
		for _, r := range h.Results {
			if !r.Compared {
				t.Errorf("result %+v not compared", r)
			}
		}
		table := render(t, v, "table")
		if !strings.Contains(table, "Data     "+h.Description) || !strings.Contains(table, "  - [critical] HashKV MISMATCH") {
			t.Errorf("table does not show the mismatch:\n%s", table)
		}
		var back struct {
			HashKV struct {
				Mismatch bool `json:"mismatch"`
			} `json:"hash_kv"`
			Endpoints []struct {
				HashKV string `json:"hash_kv"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal([]byte(render(t, v, "json")), &back); err != nil || !back.HashKV.Mismatch || back.Endpoints[0].HashKV == "" {
			t.Errorf("JSON: %+v, %v", back, err)
		}
		t.Logf("table:\n%s", table)
	})

	t.Run("CompareHashKV reports the mismatch", func(t *testing.T) {
		hc := hashcheck.CompareHashKV(ctx, cli, nil)
		if !hc.Mismatch || len(hc.Results) != 3 || !strings.Contains(hc.Description, "; "+m.Name+" has ") {
			t.Errorf("CompareHashKV = %+v, want a mismatch singling out %s", hc, m.Name)
		}
		// Explicit endpoints, one of them dead: still a mismatch between the
		// two that answer, the dead one not compared.
		eps := append(c.Endpoints(), "https://"+b.IP(4)+":1")
		hc = hashcheck.CompareHashKV(ctx, cli, eps)
		if !hc.Mismatch || hc.Results[3].Compared || !strings.Contains(hc.Results[3].NotCompared, "no answer: get status") {
			t.Errorf("CompareHashKV with a dead endpoint = %+v", hc)
		}
		t.Logf("%s", hc.Description)
	})

	// Last: after a failed initial check, embedded etcd keeps the member's WAL
	// locked (EtcdServer.Cleanup does not close it), so the data dir cannot
	// be started again in this process.
	c.Stop(victim)
	t.Run("agent config refuses to start the member", func(t *testing.T) {
		cfg, err := agentConfig(t, m)
		if err != nil {
			t.Fatalf("etcdconf: %v", err)
		}
		if !cfg.ServerFeatureGate.Enabled(features.InitialCorruptCheck) || !cfg.ServerFeatureGate.Enabled(features.CompactHashCheck) {
			t.Fatalf("etcdconf leaves the corruption checks off")
		}
		err = c.StartMember(victim, cfg)
		if err == nil || !strings.Contains(err.Error(), "found data inconsistency with peers") {
			t.Fatalf("StartMember with the agent's config = %v, want etcd's initial corruption check to refuse", err)
		}
		t.Logf("etcd refused: %v", err)
	})
}

// rewriteValue changes the value stored for key in an etcd member's bbolt
// database (bucket "key", every revision of key), leaving revisions and
// everything else as they are: the member's data now differs from its
// peers' while etcd's own bookkeeping still agrees.
func rewriteValue(t *testing.T, path, key, value string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open member db: %v", err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return errors.New(`no bucket "key"`)
		}
		changed := map[string][]byte{}
		err := b.ForEach(func(k, v []byte) error {
			var kv mvccpb.KeyValue
			if err := proto.Unmarshal(v, &kv); err != nil {
				return fmt.Errorf("decode revision %x: %w", k, err)
			}
			if string(kv.Key) != key {
				return nil
			}
			kv.Value = []byte(value)
			nv, err := proto.Marshal(&kv)
			if err != nil {
				return err
			}
			changed[string(k)] = nv
			return nil
		})
		if err != nil {
			return err
		}
		if len(changed) == 0 {
			return fmt.Errorf("key %q not in the db", key)
		}
		for k, v := range changed {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rewrite %s in %s: %v", key, path, err)
	}
}

// agentConfig is the embed.Config etcd-agent's embedded runtime would restart
// member m with (etcdconf, the agent's own code path): same name, data dir,
// addresses and certificates.
func agentConfig(t *testing.T, m *statustest.Member) (*embed.Config, error) {
	t.Helper()
	port := func(raw string) int {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		p, err := strconv.Atoi(u.Port())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := etcdconf.Spec{Name: m.Name, DataDir: m.DataDir, NodeIP: netip.MustParseAddr(m.IP),
		ClientPort: port(m.ClientURL), PeerPort: port(m.PeerURL), CertDir: m.CertDir, QuotaBackendBytes: statustest.QuotaBytes}
	return spec.EmbedConfig(slog.New(slog.DiscardHandler))
}

// hashOf is the HASHKV cell of the member named name.
func hashOf(v status.View, name string) string {
	for _, e := range v.Endpoints {
		if e.Name == name {
			return e.HashKV
		}
	}
	return ""
}
