package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/backup/s3test"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestSnapshotCommands runs `snapshot save`, `list` and `verify` as an
// operator would, against a real TLS member and a real S3 gateway: a saved
// snapshot is listed in both stores and verifies by name and as latest; a
// corrupted or truncated file is refused with a clear error and exit 1.
func TestSnapshotCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and an S3 gateway")
	}
	b := testnet.Take(t)
	srv := s3test.Start(t, b.IP(2))
	srv.Env(t)
	srv.Bucket(t, "etcd-backups")
	c := statustest.Start(t, b.IP(1))
	m := c.Members[0]
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	snapDir := filepath.Join(dir, "snapshots")
	if err := config.WriteFile(cfgPath, "", &config.Config{
		Cluster: config.Cluster{Name: "cli-test", Discovery: config.Discovery{Static: m.Name + "=" + m.PeerURL}},
		Node:    config.Node{Identity: "static", IP: m.IP, DataDir: filepath.Join(dir, "data")},
		PKI:     config.PKI{Dir: c.CertDir},
		Etcd:    config.Etcd{ClientPort: urlPort(t, m.ClientURL)},
		Agent:   config.Agent{StatusFile: filepath.Join(dir, "status.json")},
		Backup:  config.Backup{Dir: snapDir, S3: config.BackupS3{Bucket: "etcd-backups", Endpoint: srv.Endpoint}},
	}); err != nil {
		t.Fatal(err)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for i := range 100 {
		if _, err := cli.Put(context.Background(), fmt.Sprintf("/cli/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut := runCLI(t, nil, "snapshot", "save", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "stored in "+snapDir+", s3://etcd-backups/cli-test") {
		t.Fatalf("save: exit %d\n%s\n%s", code, out, errOut)
	}
	name := strings.TrimPrefix(strings.Fields(out)[1], "")
	if _, err := backup.ParseName(name); err != nil {
		t.Fatalf("save printed %q: %v", out, err)
	}

	code, out, errOut = runCLI(t, nil, "snapshot", "list", "--config", cfgPath, "-o", "json")
	var rows []snapshotRow
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 2 || rows[0].Name != name || rows[1].Where != "s3://etcd-backups/cli-test" || rows[0].Keys != 100 || rows[0].TakenBy != m.Name {
		t.Fatalf("list: exit %d, %v, rows %+v\n%s", code, err, rows, errOut)
	}
	if code, out, _ = runCLI(t, nil, "snapshot", "list", "--config", cfgPath); code != 0 || !strings.Contains(out, name) {
		t.Fatalf("list table: exit %d\n%s", code, out)
	}

	for _, ref := range []string{"latest", name, "s3://etcd-backups/cli-test/" + name + ".db", filepath.Join(snapDir, name+".db")} {
		code, out, errOut = runCLI(t, nil, "snapshot", "verify", "--config", cfgPath, ref)
		if code != 0 || !strings.Contains(out, "verified") || !strings.Contains(out, "HashKV equal") {
			t.Fatalf("verify %s: exit %d\n%s\n%s", ref, code, out, errOut)
		}
	}

	// A corrupted copy (metadata beside it) and a truncated file without
	// metadata (as `etcdctl snapshot save` leaves one) are refused.
	data, err := os.ReadFile(filepath.Join(snapDir, name+".db"))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.MkdirAll(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), data...)
	corrupt[5000] ^= 0xff
	if err := os.WriteFile(filepath.Join(bad, name+".db"), corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	meta, _ := os.ReadFile(filepath.Join(snapDir, name+".meta.json"))
	if err := os.WriteFile(filepath.Join(bad, name+".meta.json"), meta, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "truncated.db"), data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		filepath.Join(bad, name+".db"):     "corrupt",
		filepath.Join(bad, "truncated.db"): "truncated",
	} {
		code, out, errOut = runCLI(t, nil, "snapshot", "verify", "--config", cfgPath, file)
		if code != exitFailure || !strings.Contains(errOut, want) {
			t.Errorf("verify %s: exit %d, want 1 and an error saying %q\n%s\n%s", file, code, want, out, errOut)
		}
		t.Logf("verify %s: %s", filepath.Base(file), strings.TrimSpace(errOut))
	}

	// S3 stops answering: latest is not chosen among what is left, unless
	// asked to (--allow-partial), and a recover with a named snapshot
	// refuses the flag.
	srv.Stop()
	code, out, errOut = runCLI(t, nil, "snapshot", "verify", "--config", cfgPath)
	if code != exitFailure || !strings.Contains(errOut, "s3://etcd-backups/cli-test") || !strings.Contains(errOut, "--allow-partial") {
		t.Errorf("verify latest with S3 down: exit %d, want 1 and an error naming the store\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "snapshot", "verify", "--config", cfgPath, "--allow-partial")
	if code != 0 || !strings.Contains(out, name+" verified") {
		t.Errorf("verify latest --allow-partial with S3 down: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = runCLI(t, nil, "recover", "--config", cfgPath, "--from-snapshot", name, "--allow-partial"); code != exitUsage || !strings.Contains(errOut, "latest only") {
		t.Errorf("recover --from-snapshot NAME --allow-partial: exit %d\n%s", code, errOut)
	}
}

// TestSnapshotListSaysWhereTheNewestIs: without S3 the cluster's newest
// snapshot may sit on another node's disk; `snapshot list` says which node
// and directory (from the agent's report), and says nothing once it is listed.
func TestSnapshotListSaysWhereTheNewestIs(t *testing.T) {
	dir := t.TempDir()
	cfg, _, err := config.Load(config.Source{Path: nodeConfig(t, dir)})
	if err != nil {
		t.Fatal(err)
	}
	if got := newestElsewhere(cfg, nil); got != "" {
		t.Errorf("no report: %q, want nothing", got)
	}
	rep := `{"backup": {"interval": 1800000000000, "last": {"name": "etcd-20261205T100000Z-r42", "revision": 42, "time": "2026-12-05T10:00:00Z",
		"taken_by": "etcd-10-0-0-2", "where": ["/var/lib/etcd-agent/snapshots"], "size": 20480}}}`
	if err := os.WriteFile(filepath.Join(dir, "status.json"), []byte(rep), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "the cluster's newest snapshot etcd-20261205T100000Z-r42 (revision 42, 2026-12-05T10:00:00Z) is not in these stores: etcd-10-0-0-2 took it and keeps it in /var/lib/etcd-agent/snapshots"
	if got := newestElsewhere(cfg, []snapshotRow{{Name: "older"}}); !strings.Contains(got, want) {
		t.Errorf("newest elsewhere: %q, want %q", got, want)
	}
	if got := newestElsewhere(cfg, []snapshotRow{{Name: "etcd-20261205T100000Z-r42"}}); got != "" {
		t.Errorf("newest listed here: %q, want nothing", got)
	}
}
