package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// liveFixture is what the -o runs of the commands that talk to a cluster
// need: one real TLS member (embedded etcd, the agent never ran), a node
// config pointing at it, and what each command acts on.
type liveFixture struct {
	cfgPath   string
	endpoint  string   // the member's client URL
	snapshot  string   // a snapshot file saved from the member, for verify
	discovery []string // --endpoints and --cert-dir for discovery new and show
	token     string   // a v3 discovery token with one registration
	takeSlot  func()   // holds a reboot slot for the member (release frees it)
	// takeLearnerSlot adds a learner that never starts and holds a slot
	// for it (release refuses: its holder is not a healthy voter);
	// dropLearner frees the slot and removes the learner.
	takeLearnerSlot, dropLearner func()
}

// liveFixtures starts the member (about 0.5 s) and prepares each command's
// subject: a snapshot in backup.dir, the member's CA rotation record, a
// discovery token with a registration as a plain etcd writes it.
func liveFixtures(t *testing.T, dir, newCA string) liveFixture {
	t.Helper()
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1))
	m := c.Members[0]
	lv := liveFixture{cfgPath: filepath.Join(dir, "live.yaml"), endpoint: m.ClientURL}
	backupDir := filepath.Join(dir, "live-backup")
	if err := config.WriteFile(lv.cfgPath, "", &config.Config{
		Cluster: config.Cluster{Name: "cli-test", Discovery: config.Discovery{Static: m.Name + "=" + m.PeerURL}},
		Node:    config.Node{Identity: "static", IP: m.IP, DataDir: filepath.Join(dir, "live-data")},
		PKI:     config.PKI{Dir: c.CertDir},
		Etcd:    config.Etcd{ClientPort: urlPort(t, m.ClientURL), PeerPort: urlPort(t, m.PeerURL)},
		Agent:   config.Agent{StatusFile: filepath.Join(dir, "live-status.json")},
		Backup:  config.Backup{Dir: backupDir},
	}); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx := context.Background()

	code, out, errOut := runCLI(t, nil, "snapshot", "save", "--config", lv.cfgPath, "-o", "json")
	var saved savedSnapshot
	if err := json.Unmarshal([]byte(out), &saved); code != 0 || err != nil {
		t.Fatalf("snapshot save: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	lv.snapshot = filepath.Join(backupDir, saved.Name+backup.SnapshotSuffix)

	oldCA := pki.BundleCANames(readFileT(t, filepath.Join(c.CertDir, pki.CACertFile)))[0]
	newName := pki.BundleCANames(readFileT(t, newCA))[0]
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	if err := rollout.RecordCAState(ctx, cli, rollout.CAState{Member: m.Name, Trusts: []string{oldCA, newName}, IssuedBy: oldCA, At: at}); err != nil {
		t.Fatal(err)
	}

	lv.discovery = []string{"--endpoints", m.ClientURL, "--cert-dir", c.CertDir}
	if lv.token, err = discovery.NewToken(ctx, cli, 3); err != nil {
		t.Fatal(err)
	}
	// A founder's registration, at the key and in the form a plain etcd
	// writes it (v3 discovery layout).
	reg := discovery.Member{Name: m.Name, PeerURL: m.PeerURL}
	id, err := discovery.MemberID(lv.token, reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, fmt.Sprintf("/_etcd/registry/%s/members/%s", lv.token, id), reg.String()); err != nil {
		t.Fatal(err)
	}

	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lv.takeSlot = func() {
		h := fleetlock.Holder{ID: "e0f3745b108f471cbd4883c6fbed8cdd", Group: "default", Member: m.Name,
			MemberID: fmt.Sprintf("%x", ml.Members[0].ID), PeerURL: m.PeerURL, Since: at}
		if _, err := fleetlock.Take(ctx, cli, h, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	var learner uint64
	lv.takeLearnerSlot = func() {
		peer := fmt.Sprintf("https://%s:%d", b.IP(2), testnet.FreePort(t, b.IP(2)))
		resp, err := cli.MemberAddAsLearner(ctx, []string{peer})
		if err != nil {
			t.Fatal(err)
		}
		learner = resp.Member.ID
		h := fleetlock.Holder{ID: "9a1f0c2b7d3e4f5a8b6c1d2e3f4a5b6c", Group: "default", Member: "etcd-never-started",
			MemberID: fmt.Sprintf("%x", learner), PeerURL: peer, Since: at}
		if _, err := fleetlock.Take(ctx, cli, h, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	lv.dropLearner = func() {
		held, err := fleetlock.Read(ctx, cli)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range held {
			if err := fleetlock.Free(ctx, cli, h); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cli.MemberRemove(ctx, learner); err != nil {
			t.Fatal(err)
		}
	}
	return lv
}
