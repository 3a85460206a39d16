package butane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
)

// TestSpecCarriesBackup: the spec's backup section reaches every node's
// config.yaml and loads there with the agent's own loader.
func TestSpecCarriesBackup(t *testing.T) {
	s := freshCASpec(t)
	s.Backup = SpecBackup{Interval: "1h", Retention: &config.Retention{Hourly: 12, Daily: 7, Weekly: 8},
		S3: &SpecBackupS3{Bucket: "acme-etcd-backups", Prefix: "prod/", Region: "eu-west-1"}}
	res, err := Render(s, Options{DefaultImageTag: "v3.7.3"})
	if err != nil {
		t.Fatal(err)
	}
	c := parseIgnition(t, res.Ignition)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, fileContents(t, findFile(t, c, AgentConfigPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Source{Path: cfgPath, DefaultImageTag: "v3.7.3", UID: 1001})
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Backup
	if b.Interval.D() != time.Hour || b.Retention.Weekly != 8 || b.S3.Bucket != "acme-etcd-backups" || b.S3.Prefix != "prod/" || b.S3.Region != "eu-west-1" {
		t.Errorf("backup in the node's config: %+v", b)
	}

	// A spec without backup settings renders none: the agent's defaults.
	plain, err := agentConfig(freshCASpec(t))
	if err != nil || strings.Contains(string(plain), "backup") {
		t.Errorf("config without backup settings: %v\n%s", err, plain)
	}
}

func TestSpecBadBackup(t *testing.T) {
	s := freshCASpec(t)
	s.Backup = SpecBackup{Interval: "often", S3: &SpecBackupS3{Bucket: "s3://acme/etcd"}}
	_, err := Render(s, Options{DefaultImageTag: "v3.7.3"})
	var cerr *config.Error
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "backup.interval") {
		t.Fatalf("err = %v, want a config error on backup.interval", err)
	}
	s.Backup.Interval = "30m"
	_, err = Render(s, Options{DefaultImageTag: "v3.7.3"})
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "backup.s3.bucket") || !strings.Contains(err.Error(), "fix:") {
		t.Fatalf("err = %v, want a config error on backup.s3.bucket with its fix", err)
	}
}
