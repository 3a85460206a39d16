package butane

import "github.com/etcd-agent/etcd-agent/agent/config"

// SpecBackup is the agents' snapshot settings, copied into every node's
// config as its backup: section (see agent/config.Backup for each field and
// its default; zero values are left out, so the agent's defaults apply).
// With s3.bucket set, the nodes' instance role needs the bucket policy in
// docs/deploy-aws.md.
type SpecBackup struct {
	Disabled       bool              `yaml:"disabled,omitempty"`
	Interval       string            `yaml:"interval,omitempty"`
	VerifyInterval string            `yaml:"verifyInterval,omitempty"`
	Dir            string            `yaml:"dir,omitempty"`
	Retention      *config.Retention `yaml:"retention,omitempty"`
	S3             *SpecBackupS3     `yaml:"s3,omitempty"`
}

// SpecBackupS3 is backup.s3 of the agent's config.
type SpecBackupS3 struct {
	Bucket   string `yaml:"bucket"`
	Prefix   string `yaml:"prefix,omitempty"`
	Region   string `yaml:"region,omitempty"`
	Endpoint string `yaml:"endpoint,omitempty"`
}

// validate reports durations that do not parse; the agent's own checks of
// the rendered config (checkAgentConfig) cover the rest.
func (b SpecBackup) validate(ps *problems) {
	for _, d := range []struct{ field, v string }{{"backup.interval", b.Interval}, {"backup.verifyInterval", b.VerifyInterval}} {
		if _, err := config.ParseDuration(d.v); d.v != "" && err != nil {
			ps.add(d.field, d.v, "is not a duration", "write it like 30m or 6h")
		}
	}
}

// backupDoc is the spec's backup section as the agent config carries it;
// nil when the spec sets nothing (the agent's defaults). Durations that do
// not parse are left out (validate reports them).
func backupDoc(b SpecBackup) *SpecBackup {
	if b == (SpecBackup{}) {
		return nil
	}
	for _, d := range []*string{&b.Interval, &b.VerifyInterval} {
		if _, err := config.ParseDuration(*d); err != nil {
			*d = ""
		}
	}
	return &b
}
