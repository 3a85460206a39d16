package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/pki"
)

// TestCARotateCommands: from an operator host (etcdctl-style flags), `ca
// rotate` writes step 1's bundle, reads every member's record from a real
// 3-member cluster, shows where each stands, and refuses a step until
// every member completed the one before. (TestCARotationUnderLoad proves
// the agents write the records as they rotate.)
func TestCARotateCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	b := testnet.Take(t)
	c := statustest.Start(t, b.IP(1), b.IP(2), b.IP(3))
	dir := t.TempDir()
	oldPath := filepath.Join(c.CertDir, pki.CACertFile)
	newDir := filepath.Join(dir, "ca-new")
	if code, _, errOut := runCLI(t, nil, "ca", "init", "--dir", newDir, "--cn", "etcd-agent CA 2"); code != 0 {
		t.Fatalf("ca init: %s", errOut)
	}
	newPath := filepath.Join(newDir, "ca.crt")
	oldCA, newCA := pki.BundleCANames(readFileT(t, oldPath))[0], pki.BundleCANames(readFileT(t, newPath))[0]

	bundlePath := filepath.Join(dir, "bundle.crt")
	code, out, errOut := runCLI(t, nil, "ca", "rotate", "bundle", "--old", oldPath, "--new", newPath, "--out", bundlePath)
	if code != 0 || !strings.Contains(out, oldCA+", "+newCA) {
		t.Fatalf("bundle: exit %d\n%s%s", code, out, errOut)
	}
	if got := pki.BundleCANames(readFileT(t, bundlePath)); len(got) != 2 || got[0] != oldCA || got[1] != newCA {
		t.Errorf("bundle holds %v, want [%s %s]", got, oldCA, newCA)
	}
	if code, _, errOut := runCLI(t, nil, "ca", "rotate", "bundle", "--old", bundlePath, "--new", filepath.Join(dir, "nope.crt")); code != config.ExitCode ||
		!strings.Contains(errOut, "--old") || !strings.Contains(errOut, "--new") || !strings.Contains(errOut, "--out") {
		t.Errorf("bad bundle flags: exit %d, %s", code, errOut)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	record := func(i int, issuer string, trusts ...string) {
		t.Helper()
		if err := rollout.RecordCAState(context.Background(), cli, rollout.CAState{Member: c.Members[i].Name, Trusts: trusts, IssuedBy: issuer, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// Step 1 done on two members; the third has not restarted yet.
	record(0, oldCA, oldCA, newCA)
	record(1, oldCA, oldCA, newCA)
	record(2, oldCA, oldCA)
	conn := []string{"--new-ca", newPath, "--endpoints", strings.Join(c.Endpoints(), ","),
		"--cacert", oldPath, "--cert", filepath.Join(c.CertDir, pki.OperatorCertFile), "--key", filepath.Join(c.CertDir, pki.OperatorKeyFile)}
	rotate := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append(append([]string{"ca", "rotate"}, args...), conn...)...)
	}
	code, out, errOut = rotate("status")
	if code != 0 || !strings.Contains(out, "next: step 1: ca.crt := the bundle") || strings.Count(out, "yes") < 4 {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = rotate("check", "--step", "2")
	if code != exitUnhealthy || !strings.Contains(errOut, "step 2 refused: every member must have completed step 1 first ("+c.Members[2].Name+": done step 0)") {
		t.Errorf("check --step 2 with a member behind: exit %d, %s", code, errOut)
	}
	record(2, oldCA, oldCA, newCA)
	if code, out, errOut := rotate("check", "--step", "2"); code != 0 || !strings.Contains(out, "step 2 may be pushed: ca.key := the new CA's key") {
		t.Errorf("check --step 2: exit %d\n%s%s", code, out, errOut)
	}
	// The new key everywhere but one member: the old CA stays.
	record(0, newCA, oldCA, newCA)
	record(1, newCA, oldCA, newCA)
	if code, _, errOut := rotate("check", "--step", "3"); code != exitUnhealthy || !strings.Contains(errOut, c.Members[2].Name+": done step 1") {
		t.Errorf("check --step 3 with a member's certificates still old: exit %d, %s", code, errOut)
	}
	record(2, newCA, oldCA, newCA)
	code, out, _ = rotate("status", "-o", "json")
	var r rollout.Rotation
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || r.Next != rollout.StepDropOld || len(r.Members) != 3 {
		t.Errorf("status -o json: exit %d, %v, %+v", code, err, r)
	}
	if code, _, _ := rotate("check", "--step", "5"); code != exitUsage {
		t.Errorf("--step 5: exit %d, want %d", code, exitUsage)
	}
}

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}
