package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Backup configures scheduled snapshots (see package agent/backup). They
// are on by default, kept on the node's disk; S3 is added when a bucket is
// set.
type Backup struct {
	// Disabled turns scheduled and pre-change snapshots off. Zero: on.
	Disabled bool `yaml:"disabled,omitempty"`
	// Interval between scheduled snapshots, one per interval cluster-wide,
	// taken by whichever healthy agent wins the slot. Zero: 30m.
	// At least MinBackupInterval.
	Interval Duration `yaml:"interval,omitempty"`
	// VerifyInterval is how often the newest snapshot is restored into a
	// throw-away member and checked. Zero: 6h. At least Interval.
	VerifyInterval Duration `yaml:"verifyInterval,omitempty"`
	// Dir keeps this node's snapshots. Zero: "snapshots" beside
	// node.dataDir (/var/lib/etcd-agent/snapshots by default).
	Dir string `yaml:"dir,omitempty"`
	// Retention says which snapshots are kept, in the local dir and in S3.
	Retention Retention `yaml:"retention,omitempty"`
	// S3 is optional: set a bucket to keep snapshots there too.
	S3 BackupS3 `yaml:"s3,omitempty"`
}

// Retention keeps recent history dense and older history sparse: the
// newest snapshot of each of the last Hourly hours, Daily days and Weekly
// weeks (a snapshot may count for several); the newest is always kept.
// Zero: 24 hourly, 7 daily, 4 weekly. Set a count to -1 for none of that
// kind.
type Retention struct {
	Hourly int `yaml:"hourly,omitempty"`
	Daily  int `yaml:"daily,omitempty"`
	Weekly int `yaml:"weekly,omitempty"`
}

// BackupS3 is where snapshots go in S3 (or an S3-compatible store).
// Credentials come from the AWS SDK's default chain: on EC2 the instance
// role through IMDS (see docs/deploy-aws.md for its policy).
type BackupS3 struct {
	// Bucket holds the snapshots. Zero: no S3.
	Bucket string `yaml:"bucket,omitempty"`
	// Prefix is prepended to the object keys; the cluster name follows it
	// ("<prefix><cluster.name>/NAME.db"). Zero: none.
	Prefix string `yaml:"prefix,omitempty"`
	// Region of the bucket. Zero: the SDK's default (AWS_REGION, …), else
	// us-east-1. Required for AWS when the bucket is elsewhere.
	Region string `yaml:"region,omitempty"`
	// Endpoint is an S3-compatible store's URL; path-style addressing is
	// used with it. Zero: AWS S3.
	Endpoint string `yaml:"endpoint,omitempty"`
}

// Backup defaults and limits.
const (
	DefaultBackupInterval = 30 * time.Minute
	DefaultVerifyInterval = 6 * time.Hour
	// MinBackupInterval keeps snapshots from competing with the cluster's
	// own work (tests use a few seconds; production tens of minutes).
	MinBackupInterval = 2 * time.Second
	DefaultHourly     = 24
	DefaultDaily      = 7
	DefaultWeekly     = 4
)

func (c *Config) applyBackupDefaults() {
	b := &c.Backup
	if b.Interval == 0 {
		b.Interval = Duration(DefaultBackupInterval)
	}
	if b.VerifyInterval == 0 {
		b.VerifyInterval = Duration(max(DefaultVerifyInterval, b.Interval.D()))
	}
	if b.Dir == "" && c.Node.DataDir != "" {
		b.Dir = filepath.Join(filepath.Dir(filepath.Clean(c.Node.DataDir)), "snapshots")
	}
	for _, r := range []struct {
		p *int
		v int
	}{{&b.Retention.Hourly, DefaultHourly}, {&b.Retention.Daily, DefaultDaily}, {&b.Retention.Weekly, DefaultWeekly}} {
		if *r.p == 0 {
			*r.p = r.v
		}
	}
}

// bucketName is S3's rule for bucket names (general purpose buckets).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// awsRegion is the shape of AWS region names (eu-west-1, us-gov-east-1);
// an S3-compatible endpoint may use any region string.
var awsRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

func (c *Config) validateBackup(bad func(field, value, problem, fix string), warn func(string)) {
	b := c.Backup
	if b.Disabled {
		return
	}
	if i := b.Interval.D(); i < MinBackupInterval {
		bad("backup.interval", b.Interval.String(), "is shorter than "+MinBackupInterval.String(), "use 30m (the default) or 1h")
	} else if i < 5*time.Minute {
		warn(fmt.Sprintf("backup.interval = %s snapshots the whole database very often: fine for a test, heavy for a large production database", b.Interval))
	}
	if b.VerifyInterval < b.Interval {
		bad("backup.verifyInterval", b.VerifyInterval.String(), "is shorter than backup.interval ("+b.Interval.String()+"): there is nothing new to verify", "use a multiple of the interval, e.g. 6h")
	}
	if !filepath.IsAbs(b.Dir) {
		bad("backup.dir", b.Dir, "must be an absolute path", "start it with /, e.g. /var/lib/etcd-agent/snapshots")
	} else if d := filepath.Clean(b.Dir); d == filepath.Clean(c.Node.DataDir) || strings.HasPrefix(d, filepath.Clean(c.Node.DataDir)+"/") {
		bad("backup.dir", b.Dir, "is inside node.dataDir, which is moved aside when the member rejoins", "keep snapshots beside it, e.g. /var/lib/etcd-agent/snapshots")
	}
	r := b.Retention
	for _, f := range []struct {
		field string
		n     int
	}{{"backup.retention.hourly", r.Hourly}, {"backup.retention.daily", r.Daily}, {"backup.retention.weekly", r.Weekly}} {
		if f.n < -1 || f.n > 1000 {
			bad(f.field, fmt.Sprint(f.n), "must be a count from 1 to 1000, or -1 for none", "e.g. hourly: 24, daily: 7, weekly: 4")
		}
	}
	if r.Hourly < 0 && r.Daily < 0 && r.Weekly < 0 {
		warn("backup.retention keeps only the newest snapshot (every count is -1)")
	}
	s := b.S3
	if s.Bucket == "" {
		if s.Prefix != "" || s.Region != "" || s.Endpoint != "" {
			bad("backup.s3.bucket", "", "is empty but other backup.s3 settings are set", "set the bucket, or remove backup.s3")
		}
		return
	}
	if !bucketName.MatchString(s.Bucket) || strings.Contains(s.Bucket, "..") {
		bad("backup.s3.bucket", s.Bucket, "is not an S3 bucket name (3-63 lowercase letters, digits, '.', '-')", "use the bucket's name only, without s3:// or a path (put a path in backup.s3.prefix)")
	}
	if strings.HasPrefix(s.Prefix, "/") {
		bad("backup.s3.prefix", s.Prefix, "must not start with /", "write it like etcd/backups/")
	}
	if s.Prefix != "" && !strings.HasSuffix(s.Prefix, "/") {
		warn(fmt.Sprintf("backup.s3.prefix = %q has no trailing /: keys will read %s<cluster>/…", s.Prefix, s.Prefix))
	}
	if s.Endpoint != "" {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("backup.s3.endpoint", s.Endpoint, "is not an http(s) URL", "write it like https://s3.example.com:9000, or remove it for AWS S3")
		} else if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			warn(fmt.Sprintf("backup.s3.endpoint = %s is plain http: snapshots hold every key of the cluster", s.Endpoint))
		}
	}
	if s.Region != "" && s.Endpoint == "" && !awsRegion.MatchString(s.Region) {
		bad("backup.s3.region", s.Region, "is not an AWS region name", "write it like eu-west-1")
	}
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1"
}
