package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/pki"
)

func TestCertIssue(t *testing.T) {
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "app")
	if code, _, errOut := runCLI(t, nil, "ca", "init", "--dir", caDir); code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, errOut)
	}
	code, stdout, errOut := runCLI(t, nil, "cert", "issue", "--role", "client", "--cn", "patroni", "--out", out, "--ca-dir", caDir, "--validity", "90d")
	if code != 0 {
		t.Fatalf("cert issue: exit %d: %s", code, errOut)
	}
	crt, key, ca := filepath.Join(out, "patroni.crt"), filepath.Join(out, "patroni.key"), filepath.Join(out, "ca.crt")
	want := fmt.Sprintf("etcdctl --endpoints https://ETCD_HOST:2379 --cacert %s --cert %s --key %s endpoint health", ca, crt, key)
	if !strings.Contains(stdout, want) || !strings.Contains(stdout, "CN patroni") {
		t.Errorf("output lacks %q:\n%s", want, stdout)
	}
	c, err := pki.LoadCertificate(crt)
	if err != nil || c.Subject.CommonName != "patroni" || time.Until(c.NotAfter) > 91*24*time.Hour {
		t.Errorf("issued certificate %v: CN %q, expires %s", err, c.Subject.CommonName, c.NotAfter)
	}
	if code, _, errOut := runCLI(t, nil, "cert", "issue", "--role", "client", "--cn", "patroni", "--out", out, "--ca-dir", caDir); code != exitFailure || !strings.Contains(errOut, "--replace") {
		t.Errorf("second issue: exit %d, %q; want 1 naming --replace", code, errOut)
	}

	// Every bad flag at once, each named with its fix.
	code, _, errOut = runCLI(t, nil, "cert", "issue", "--role", "server", "--cn", "etcd-agent", "--validity", "soon", "--ca-dir", caDir)
	if code != config.ExitCode {
		t.Errorf("bad flags: exit %d, want %d", code, config.ExitCode)
	}
	for _, want := range []string{"--role", "must be client", "--cn", "agent's own identities", "--validity", "365d"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("bad flags: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, errOut := runCLI(t, nil, "cert", "issue", "--role", "client", "--cn", "x", "--out", out, "--ca-dir", filepath.Join(dir, "nope")); code != exitFailure || !strings.Contains(errOut, "nope") {
		t.Errorf("missing CA: exit %d, %q", code, errOut)
	}
}

// nodeConfig writes a node config whose pki and status file live in dir.
func nodeConfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf(`cluster:
  discovery:
    static: a=https://10.0.0.1:2380
node:
  identity: static
  ip: 10.0.0.1
pki:
  dir: %[1]s/pki
  caCert: %[1]s/ca/ca.crt
  caKey: %[1]s/ca/ca.key
agent:
  statusFile: %[1]s/status.json
`, dir)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCertCheck(t *testing.T) {
	dir := t.TempDir()
	cfgPath := nodeConfig(t, dir)
	if code, _, errOut := runCLI(t, nil, "ca", "init", "--dir", filepath.Join(dir, "ca")); code != 0 {
		t.Fatalf("ca init: %s", errOut)
	}
	// An application certificate in pki.dir with 10 days left: due within
	// the default 30d renewal margin.
	if code, _, errOut := runCLI(t, nil, "cert", "issue", "--role", "client", "--cn", "short", "--validity", "10d", "--out", filepath.Join(dir, "pki"), "--config", cfgPath); code != 0 {
		t.Fatalf("cert issue: %s", errOut)
	}
	code, stdout, _ := runCLI(t, nil, "cert", "check", "--config", cfgPath)
	if code != exitUnhealthy || !strings.Contains(stdout, "short.crt") || !strings.Contains(stdout, "DUE") || !strings.Contains(stdout, "etcd-agent CA") {
		t.Errorf("cert check: exit %d, want 3 with short.crt DUE and the CA listed:\n%s", code, stdout)
	}
	if code, stdout, _ := runCLI(t, nil, "cert", "check", "--config", cfgPath, "--within", "24h"); code != 0 || strings.Contains(stdout, "DUE") {
		t.Errorf("cert check --within 24h: exit %d, want 0:\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, nil, "cert", "check", "--config", cfgPath, "-o", "json")
	var got struct {
		Certificates []struct {
			Path string `json:"path"`
			Due  bool   `json:"due"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != exitUnhealthy || len(got.Certificates) != 3 {
		t.Errorf("cert check -o json: exit %d, %v, %+v:\n%s", code, err, got, stdout)
	}
	if code, _, _ := runCLI(t, nil, "cert", "check", "--config", cfgPath, "-o", "yaml2"); code != exitUsage {
		t.Errorf("bad -o: exit %d, want %d", code, exitUsage)
	}
}

func TestEnvPrintsEtcdctlVariables(t *testing.T) {
	dir := t.TempDir()
	cfgPath := nodeConfig(t, dir)
	if code, _, errOut := runCLI(t, nil, "env", "--config", cfgPath); code != exitFailure || !strings.Contains(errOut, "--endpoints") {
		t.Errorf("no report: exit %d, %q; want 1 naming --endpoints", code, errOut)
	}
	rep := `{"endpoints": ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]}`
	if err := os.WriteFile(filepath.Join(dir, "status.json"), []byte(rep), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, errOut := runCLI(t, nil, "env", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("env: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"export ETCDCTL_ENDPOINTS=https://10.0.0.1:2379,https://10.0.0.2:2379\n",
		"export ETCDCTL_CACERT=" + filepath.Join(dir, "pki", "ca.crt") + "\n",
		"export ETCDCTL_CERT=" + filepath.Join(dir, "pki", "operator.crt") + "\n",
		"export ETCDCTL_KEY=" + filepath.Join(dir, "pki", "operator.key") + "\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("env output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "ETCDCTL_API") {
		t.Errorf("env exports ETCDCTL_API, which etcdctl 3.7 warns about:\n%s", stdout)
	}
	if got := shellQuote("it's a dir"); got != `'it'\''s a dir'` {
		t.Errorf("shellQuote = %s", got)
	}
}
