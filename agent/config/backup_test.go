package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBackupDefaults(t *testing.T) {
	cfg, _, err := load(t, minimal+"node:\n  dataDir: /srv/etcd/data\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Backup
	if b.Disabled || b.Interval.D() != 30*time.Minute || b.VerifyInterval.D() != 6*time.Hour || b.Dir != "/srv/etcd/snapshots" ||
		b.Retention != (Retention{Hourly: 24, Daily: 7, Weekly: 4}) || b.S3.Bucket != "" {
		t.Errorf("backup defaults = %+v", b)
	}
}

func TestBackupS3Accepted(t *testing.T) {
	_, warnings, err := load(t, minimal+`backup:
  interval: 1h
  retention: {hourly: 12, daily: -1, weekly: 8}
  s3:
    bucket: acme-etcd-backups
    prefix: prod/
    region: eu-west-1
`, nil, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err = %v, warnings = %v", err, warnings)
	}
}

func TestBackupBadFields(t *testing.T) {
	cases := []struct{ name, yaml, field, value string }{
		{"interval too short", "backup:\n  interval: 1s\n", "backup.interval", "1s"},
		{"verify shorter than interval", "backup:\n  interval: 1h\n  verifyInterval: 10m\n", "backup.verifyInterval", "10m0s"},
		{"relative dir", "backup:\n  dir: snaps\n", "backup.dir", "snaps"},
		{"dir inside data dir", "node:\n  dataDir: /var/lib/e/data\nbackup:\n  dir: /var/lib/e/data/snaps\n", "backup.dir", "/var/lib/e/data/snaps"},
		{"retention negative", "backup:\n  retention: {hourly: -5}\n", "backup.retention.hourly", "-5"},
		{"bucket with scheme", "backup:\n  s3: {bucket: 's3://acme/x'}\n", "backup.s3.bucket", "s3://acme/x"},
		{"s3 without bucket", "backup:\n  s3: {region: eu-west-1}\n", "backup.s3.bucket", ""},
		{"prefix with slash", "backup:\n  s3: {bucket: acme, prefix: /x/}\n", "backup.s3.prefix", "/x/"},
		{"bad endpoint", "backup:\n  s3: {bucket: acme, endpoint: 'minio:9000'}\n", "backup.s3.endpoint", "minio:9000"},
		{"bad region", "backup:\n  s3: {bucket: acme, region: Ireland}\n", "backup.s3.region", "Ireland"},
		{"unknown key", "backup:\n  s3: {bucket: acme, buckit: x}\n", "backup.s3.buckit (line 7): unknown key; did you mean bucket?", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := load(t, minimal+c.yaml, nil, nil)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.field) || (c.value != "" && !strings.Contains(msg, c.value)) {
				t.Errorf("message %q does not name %q = %q", msg, c.field, c.value)
			}
			if !saysFix(msg) {
				t.Errorf("message %q gives no fix", msg)
			}
		})
	}
}

func TestBackupDisabledSkipsChecks(t *testing.T) {
	if _, _, err := load(t, minimal+"backup:\n  disabled: true\n  interval: 1s\n", nil, nil); err != nil {
		t.Fatal(err)
	}
}
