package etcdconf

import (
	"net/netip"
	"strings"
	"testing"

	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/features"
)

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"no name", func(s *Spec) { s.Name = "" }, "name: required"},
		{"name with comma", func(s *Spec) { s.Name = "a,b" }, `name "a,b"`},
		{"relative data dir", func(s *Spec) { s.DataDir = "data" }, `dataDir "data"`},
		{"relative cert dir", func(s *Spec) { s.CertDir = "" }, "certDir"},
		{"no ip", func(s *Spec) { s.NodeIP = netip.Addr{} }, "nodeIP"},
		{"unspecified ip", func(s *Spec) { s.NodeIP = netip.MustParseAddr("0.0.0.0") }, "nodeIP"},
		{"port range", func(s *Spec) { s.ClientPort = 70000 }, "clientPort 70000"},
		{"same ports", func(s *Spec) { s.ClientPort, s.PeerPort = 2380, 2380 }, "they must differ"},
		{"bad state", func(s *Spec) { s.InitialClusterState = "joining" }, `initialClusterState "joining"`},
		{"state without cluster", func(s *Spec) { s.InitialCluster, s.InitialClusterState = "", "existing" }, "only together with initialCluster"},
		{"cluster without me", func(s *Spec) { s.InitialCluster = "n2=https://10.0.1.6:2380" }, `no entry for this member "n1"`},
		{"cluster wrong url", func(s *Spec) { s.InitialCluster = "n1=https://10.0.1.9:2380" }, "does not match this member's peer URL https://10.0.1.5:2380"},
		{"plaintext peer", func(s *Spec) { s.InitialCluster = "n1=https://10.0.1.5:2380,n2=http://10.0.1.6:2380" }, "TLS only"},
		{"garbage cluster", func(s *Spec) { s.InitialCluster = "n1" }, "initialCluster"},
		{"negative quota", func(s *Spec) { s.QuotaBackendBytes = -1 }, "quotaBackendBytes -1"},
		{"bad mode", func(s *Spec) { s.AutoCompactionMode = "daily" }, `autoCompactionMode "daily"`},
		{"bad retention", func(s *Spec) { s.AutoCompactionRetention = "soon" }, `autoCompactionRetention "soon"`},
		{"revision retention", func(s *Spec) { s.AutoCompactionMode, s.AutoCompactionRetention = "revision", "1h" }, "revision count"},
		{"election too short", func(s *Spec) { s.HeartbeatMs = 500 }, "electionMs 1000: must be at least 5 times heartbeatMs 500"},
		{"election too long", func(s *Spec) { s.ElectionMs = 60000 }, "at most 50000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.mod(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
			if _, err := s.EmbedConfig(nil); err == nil {
				t.Errorf("EmbedConfig accepted an invalid spec")
			}
		})
	}
}

func TestExtraFlagsDenyList(t *testing.T) {
	denied := []string{
		"--name=x", "--data-dir=/x", "--wal-dir=/x", "--listen-client-urls=http://0.0.0.0:2379",
		"--advertise-client-urls=https://x:2379",
		"--initial-cluster=x=https://x:2380", "--initial-cluster-state=new", "--cert-file=/x",
		"--key-file=/x", "--peer-key-file=/x", "--client-cert-auth=false", "--peer-client-cert-auth=false",
		"--trusted-ca-file=/x", "--auto-tls", "--peer-auto-tls=true", "--discovery-token=x",
		"--discovery-endpoints=https://x", "--client-crl-file=/x", "--self-signed-cert-validity=3",
		"--force-new-cluster", "--unsafe-no-fsync", "--log-outputs=/tmp/x", "--quota-backend-bytes=1",
		"--config-file=/x", "--raft-read-timeout=1s",
	}
	for _, f := range denied {
		s := validSpec()
		s.ExtraFlags = []string{f}
		name, _, _ := strings.Cut(f, "=")
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), name+" is set by etcd-agent") {
			t.Errorf("ExtraFlags %q: Validate() = %v, want a refusal naming %s", f, err, name)
		}
	}
	bad := map[string]string{
		"max-txn-ops=256":                                        "want --flag=value",
		"--quota-backed-bytes=1":                                 "--quota-backed-bytes is not an etcd server setting",
		"--max-txn-ops=lots":                                     "--max-txn-ops=lots",
		"--max-txn-ops":                                          "--max-txn-ops needs a value",
		"--grpc-keepalive-time=5":                                "not an etcd server setting",
		"--grpc-keepalive-interval=5":                            "--grpc-keepalive-interval=5",
		"--listen-metrics-urls=http://0.0.0.0:2381":              "0.0.0.0 is not a loopback address",
		"--listen-metrics-urls=http://10.0.1.5:2381":             "allows it on loopback only",
		"--listen-metrics-urls=http://127.0.0.1":                 "is not a URL like http://127.0.0.1:2381",
		"--listen-metrics-urls=unix:///x":                        "is not a URL like",
		"--listen-metrics-urls":                                  "needs a value",
		"--listen-metrics-urls=http://127.0.0.1:2381,http://x:1": "x is not a loopback address",
	}
	for f, want := range bad {
		s := validSpec()
		s.ExtraFlags = []string{f}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ExtraFlags %q: Validate() = %v, want it to mention %q", f, err, want)
		}
	}
	s := validSpec()
	s.ExtraFlags = []string{"--max-txn-ops=256", "--enable-pprof", "--log-level=warn", "--pre-vote=false",
		"--listen-metrics-urls=http://127.0.0.1:2381,https://localhost:2382", "--metrics=extensive"}
	if err := s.Validate(); err != nil {
		t.Errorf("allowed ExtraFlags refused: %v", err)
	}
	// The embedded runtime listens where the flag says, as etcd would.
	cfg, err := s.EmbedConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ListenMetricsUrls) != 2 || cfg.ListenMetricsUrls[0].Host != "127.0.0.1:2381" || cfg.Metrics != "extensive" {
		t.Errorf("embed metrics listeners %v, level %q", cfg.ListenMetricsUrls, cfg.Metrics)
	}
}

// TestExtraFlagsStrictReconfigOff: turning etcd's strict reconfiguration
// check off is refused in every spelling; turning it on is fine.
func TestExtraFlagsStrictReconfigOff(t *testing.T) {
	for _, f := range []string{
		"--strict-reconfig-check=false", "--strict-reconfig-check=0", "--strict-reconfig-check=F",
		"--strict-reconfig-check false", "-strict-reconfig-check=false", "-strict-reconfig-check\tfalse",
	} {
		s := validSpec()
		s.ExtraFlags = []string{f}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "turns off etcd's strict reconfiguration check") {
			t.Errorf("ExtraFlags %q: Validate() = %v, want the strict reconfiguration refusal", f, err)
		}
	}
	for _, f := range []string{"--strict-reconfig-check", "--strict-reconfig-check=true"} {
		s := validSpec()
		s.ExtraFlags = []string{f}
		if err := s.Validate(); err != nil {
			t.Errorf("ExtraFlags %q refused: %v", f, err)
		}
	}
}

// TestExtraFeatureGates: an extra --feature-gates adds gates, but may not
// turn the corruption checks off.
func TestExtraFeatureGates(t *testing.T) {
	refused := map[string]string{
		"--feature-gates=InitialCorruptCheck=false":                           "turns off InitialCorruptCheck, which etcd-agent keeps on",
		"--feature-gates=CompactHashCheck=false,StopGRPCServiceOnDefrag=true": "turns off CompactHashCheck, which",
		"--feature-gates=CompactHashCheck=0,InitialCorruptCheck=f":            "turns off CompactHashCheck and InitialCorruptCheck",
		"--feature-gates=NoSuchGate=true":                                     "unrecognized feature gate: NoSuchGate",
		"--feature-gates=StopGRPCServiceOnDefrag":                             "missing bool value",
		"--feature-gates": "--feature-gates needs a value",
	}
	for f, want := range refused {
		s := validSpec()
		s.ExtraFlags = []string{f}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ExtraFlags %q: Validate() = %v, want it to mention %q", f, err, want)
		}
	}
	for _, f := range []string{
		"--feature-gates=StopGRPCServiceOnDefrag=true",
		"--feature-gates=InitialCorruptCheck=true,SetMemberLocalAddr=true",
		// AllAlpha fills in only the gates not set yet; the agent's come first.
		"--feature-gates=AllAlpha=false",
		"--compact-hash-check-time=5m", "--corrupt-check-time=6h",
	} {
		s := validSpec()
		s.ExtraFlags = []string{f}
		if err := s.Validate(); err != nil {
			t.Errorf("ExtraFlags %q refused: %v", f, err)
			continue
		}
		cfg, err := s.EmbedConfig(nil)
		if err != nil {
			t.Errorf("ExtraFlags %q: EmbedConfig: %v", f, err)
			continue
		}
		for _, g := range []featuregate.Feature{features.InitialCorruptCheck, features.CompactHashCheck} {
			if !cfg.ServerFeatureGate.Enabled(g) {
				t.Errorf("ExtraFlags %q turned %s off", f, g)
			}
		}
	}
}

func TestHash(t *testing.T) {
	base := validSpec()
	h := base.Hash("img:1")
	if len(h) != 64 || h != base.Hash("img:1") {
		t.Fatalf("Hash not a stable sha256: %q", h)
	}
	restart := base
	restart.InitialCluster, restart.InitialClusterToken = "", ""
	if restart.Hash("img:1") != h {
		t.Errorf("bootstrap-only settings changed the hash: a restart would replace a healthy member")
	}
	changes := map[string]func(*Spec){
		"quota": func(s *Spec) { s.QuotaBackendBytes = 1 << 30 },
		"ip":    func(s *Spec) { s.NodeIP = netip.MustParseAddr("10.0.1.7"); s.InitialCluster = "" },
		"extra": func(s *Spec) { s.ExtraFlags = []string{"--max-txn-ops=256"} },
		"gates": func(s *Spec) { s.ExtraFlags = []string{"--feature-gates=StopGRPCServiceOnDefrag=true"} },
		"certs": func(s *Spec) { s.CertDir = "/other" },
		"port":  func(s *Spec) { s.ClientPort = 2479 },
	}
	for name, mod := range changes {
		s := validSpec()
		mod(&s)
		if s.Hash("img:1") == h {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	if base.Hash("img:2") == h {
		t.Errorf("image change did not change the hash")
	}
	explicit := base
	explicit.QuotaBackendBytes = DefaultQuotaBackendBytes
	explicit.AutoCompactionMode = DefaultAutoCompactionMode
	if explicit.Hash("img:1") != h {
		t.Errorf("spelling out a default changed the hash")
	}
}

// TestOwnedTuningFlagsNameTheConfigField: the refusal of a tuning flag names
// the agent config field to set instead.
func TestOwnedTuningFlagsNameTheConfigField(t *testing.T) {
	for flag, field := range map[string]string{
		"--snapshot-count=50000":     "etcd.snapshotCount",
		"--heartbeat-interval=200":   "etcd.heartbeatInterval",
		"--election-timeout=2000":    "etcd.electionTimeout",
		"--quota-backend-bytes=1":    "etcd.quotaBackendBytes",
		"--auto-compaction-mode=rev": "etcd.autoCompactionRetention",
	} {
		s := validSpec()
		s.ExtraFlags = []string{flag}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want it to name %s", flag, err, field)
		}
		name, _, _ := strings.Cut(flag[2:], "=")
		if _, owned := OwnedFlag(name); !owned {
			t.Errorf("OwnedFlag(%q) = false", name)
		}
	}
	if _, owned := OwnedFlag("max-txn-ops"); owned {
		t.Error("OwnedFlag(max-txn-ops) = true")
	}
}

// TestExtraFlagValuesInWords: a bad value of an extra flag says what the
// flag takes, not strconv's or the feature gate's Go words.
func TestExtraFlagValuesInWords(t *testing.T) {
	for flag, want := range map[string]string{
		"--max-txn-ops=lots":                          `extra flag --max-txn-ops=lots: want a whole number (0 or more), got "lots"`,
		"--max-txn-ops=-1":                            `extra flag --max-txn-ops=-1: want a whole number (0 or more), got "-1"`,
		"--enable-pprof=maybe":                        `extra flag --enable-pprof=maybe: want true or false, got "maybe"`,
		"--grpc-keepalive-interval=often":             `extra flag --grpc-keepalive-interval=often: want a duration like 100ms or 5s, got "often"`,
		"--max-request-bytes=99999999999999999999999": `extra flag --max-request-bytes=99999999999999999999999: out of range`,
		"--feature-gates=Foo=maybe":                   `extra flag --feature-gates=Foo=maybe: gate Foo wants true or false, got "maybe"`,
	} {
		err := CheckExtraFlag(flag)
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v\nwant %s", flag, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "strconv") {
			t.Errorf("%s: %v names strconv", flag, err)
		}
	}
}
