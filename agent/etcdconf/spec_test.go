package etcdconf

import (
	"flag"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/pkg/v3/flags"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/features"
)

func validSpec() Spec {
	return Spec{
		Name:                "n1",
		DataDir:             "/var/lib/etcd-agent/data",
		NodeIP:              netip.MustParseAddr("10.0.1.5"),
		CertDir:             "/etc/etcd-agent/pki",
		InitialCluster:      "n1=https://10.0.1.5:2380,n2=https://10.0.1.6:2380",
		InitialClusterToken: "tok",
	}
}

func TestDefaults(t *testing.T) {
	s := validSpec()
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	got := s.Flags()
	want := []string{
		"--name=n1",
		"--data-dir=/var/lib/etcd-agent/data",
		"--listen-client-urls=https://10.0.1.5:2379,https://127.0.0.1:2379",
		"--advertise-client-urls=https://10.0.1.5:2379",
		"--listen-peer-urls=https://10.0.1.5:2380",
		"--initial-advertise-peer-urls=https://10.0.1.5:2380",
		"--trusted-ca-file=/etc/etcd-agent/pki/ca.crt",
		"--cert-file=/etc/etcd-agent/pki/server.crt",
		"--key-file=/etc/etcd-agent/pki/server.key",
		"--client-cert-auth=true",
		"--peer-trusted-ca-file=/etc/etcd-agent/pki/ca.crt",
		"--peer-cert-file=/etc/etcd-agent/pki/peer.crt",
		"--peer-key-file=/etc/etcd-agent/pki/peer.key",
		"--peer-client-cert-auth=true",
		"--peer-cert-allowed-cn=etcd-peer",
		"--quota-backend-bytes=4294967296",
		"--auto-compaction-mode=periodic",
		"--auto-compaction-retention=1h",
		"--feature-gates=CompactHashCheck=true,InitialCorruptCheck=true",
		"--logger=zap",
		"--log-outputs=stderr",
		"--initial-cluster=n1=https://10.0.1.5:2380,n2=https://10.0.1.6:2380",
		"--initial-cluster-state=new",
		"--initial-cluster-token=tok",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Flags():\n got %q\nwant %q", got, want)
	}
	if s.ClientURL() != "https://10.0.1.5:2379" || s.PeerURL() != "https://10.0.1.5:2380" {
		t.Errorf("URLs: %s %s", s.ClientURL(), s.PeerURL())
	}
	for _, f := range got {
		if strings.HasPrefix(f, "--listen") && strings.Contains(f, "http://") {
			t.Errorf("plaintext listener: %s", f)
		}
	}
}

func TestLoopbackNodeListensOnlyOnItsAddress(t *testing.T) {
	s := validSpec()
	s.NodeIP = netip.MustParseAddr("127.0.0.21")
	s.ClientPort, s.PeerPort = 23790, 23800
	s.InitialCluster = "n1=https://127.0.0.21:23800"
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := s.ListenClientURLs(); !slices.Equal(got, []string{"https://127.0.0.21:23790"}) {
		t.Errorf("ListenClientURLs = %q", got)
	}
}

func TestIPv6URLs(t *testing.T) {
	s := validSpec()
	s.NodeIP = netip.MustParseAddr("fd00::5")
	if got := s.PeerURL(); got != "https://[fd00::5]:2380" {
		t.Errorf("PeerURL = %s", got)
	}
}

// parseLikeEtcd parses a command line the way the etcd binary does (embed's
// flag set plus etcdmain's URL and list handling), so the test compares the
// meaning of Flags with EmbedConfig rather than their spelling.
func parseLikeEtcd(t *testing.T, args []string) *embed.Config {
	t.Helper()
	cfg := embed.NewConfig()
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	cfg.AddFlags(fs)
	state := fs.String("initial-cluster-state", embed.ClusterStateFlagNew, "")
	if err := fs.Parse(args); err != nil {
		t.Fatalf("etcd rejects Flags(): %v", err)
	}
	if fs.NArg() != 0 {
		t.Fatalf("stray arguments: %q", fs.Args())
	}
	cfg.ListenPeerUrls = flags.UniqueURLsFromFlag(fs, "listen-peer-urls")
	cfg.AdvertisePeerUrls = flags.UniqueURLsFromFlag(fs, "initial-advertise-peer-urls")
	cfg.ListenClientUrls = flags.UniqueURLsFromFlag(fs, "listen-client-urls")
	cfg.AdvertiseClientUrls = flags.UniqueURLsFromFlag(fs, "advertise-client-urls")
	cfg.LogOutputs = flags.UniqueStringsFromFlag(fs, "log-outputs")
	cfg.CipherSuites = flags.StringsFromFlag(fs, "cipher-suites")
	cfg.PeerTLSInfo.AllowedCNs = flags.StringsFromFlag(fs, "peer-cert-allowed-cn") // as etcdmain/config.go does
	cfg.ClusterState = *state
	return cfg
}

func TestFlagsAndEmbedConfigMeanTheSame(t *testing.T) {
	cases := map[string]func(*Spec){
		"bootstrap": func(*Spec) {},
		"restart": func(s *Spec) {
			s.InitialCluster, s.InitialClusterToken = "", ""
		},
		"join existing": func(s *Spec) { s.InitialClusterState = "existing" },
		"tuned": func(s *Spec) {
			s.QuotaBackendBytes = 8 << 30
			s.AutoCompactionMode, s.AutoCompactionRetention = "revision", "1000"
			s.SnapshotCount, s.HeartbeatMs, s.ElectionMs = 5000, 200, 2000
			s.ClientPort, s.PeerPort = 12379, 12380
			s.InitialCluster = "n1=https://10.0.1.5:12380"
		},
		"extra flags": func(s *Spec) {
			s.ExtraFlags = []string{
				"--max-txn-ops=256", "--grpc-keepalive-interval=30s",
				"--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
				"--enable-pprof", "--log-level=warn", "--max-learners=2", "--tls-min-version=TLS1.2",
			}
		},
		"extra feature gates": func(s *Spec) {
			s.ExtraFlags = []string{"--feature-gates=StopGRPCServiceOnDefrag=true", "--compact-hash-check-time=30s", "--corrupt-check-time=2h"}
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			s := validSpec()
			mod(&s)
			emb, err := s.EmbedConfig(nil)
			if err != nil {
				t.Fatalf("EmbedConfig: %v", err)
			}
			cli := parseLikeEtcd(t, s.Flags())
			if s.InitialCluster == "" {
				// etcdmain keeps its default; EmbedConfig clears it (see doc).
				if emb.InitialCluster != "" {
					t.Errorf("EmbedConfig kept InitialCluster %q", emb.InitialCluster)
				}
				cli.InitialCluster = ""
			}
			sortedURLs := func(c *embed.Config) [][]string {
				var out [][]string
				for _, us := range [][]string{
					urlList(c.ListenClientUrls), urlList(c.AdvertiseClientUrls),
					urlList(c.ListenPeerUrls), urlList(c.AdvertisePeerUrls),
				} {
					slices.Sort(us)
					out = append(out, us)
				}
				return out
			}
			if g, w := sortedURLs(emb), sortedURLs(cli); !slices.EqualFunc(g, w, slices.Equal) {
				t.Errorf("URLs: embed %q, flags %q", g, w)
			}
			type view struct {
				Name, Dir, State, Cluster, Token, Mode, Retention string
				Quota                                             int64
				Snap                                              uint64
				Tick, Election, MaxTxn                            uint
				Client, Peer                                      [4]string
				ClientAuth, PeerAuth, AutoTLS, PeerAutoTLS, Pprof bool
				Logger, LogLevel, TLSMin                          string
				LogOutputs, Ciphers, PeerCNs                      []string
				Keepalive                                         time.Duration
				Learners                                          int
				Gates                                             map[featuregate.Feature]bool
				CompactHashCheckTime, CorruptCheckTime            time.Duration
			}
			see := func(c *embed.Config) view {
				return view{
					c.Name, c.Dir, c.ClusterState, c.InitialCluster, c.InitialClusterToken,
					c.AutoCompactionMode, c.AutoCompactionRetention, c.QuotaBackendBytes, c.SnapshotCount,
					c.TickMs, c.ElectionMs, c.MaxTxnOps,
					[4]string{c.ClientTLSInfo.CertFile, c.ClientTLSInfo.KeyFile, c.ClientTLSInfo.TrustedCAFile},
					[4]string{c.PeerTLSInfo.CertFile, c.PeerTLSInfo.KeyFile, c.PeerTLSInfo.TrustedCAFile},
					c.ClientTLSInfo.ClientCertAuth, c.PeerTLSInfo.ClientCertAuth, c.ClientAutoTLS, c.PeerAutoTLS, c.EnablePprof,
					c.Logger, c.LogLevel, c.TlsMinVersion, append([]string{}, c.LogOutputs...), append([]string{}, c.CipherSuites...), append([]string{}, c.PeerTLSInfo.AllowedCNs...),
					c.GRPCKeepAliveInterval, c.MaxLearners, gates(c), c.CompactHashCheckTime, c.CorruptCheckTime,
				}
			}
			g, w := see(emb), see(cli)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("embed config differs from flags:\n embed %+v\n flags %+v", g, w)
			}
			if !g.ClientAuth || !g.PeerAuth || g.AutoTLS || g.PeerAutoTLS || !reflect.DeepEqual(g.PeerCNs, []string{PeerCommonName}) {
				t.Errorf("TLS not enforced: %+v", g)
			}
			if !g.Gates[features.InitialCorruptCheck] || !g.Gates[features.CompactHashCheck] {
				t.Errorf("corruption checks not on: %v", g.Gates)
			}
			if err := emb.Validate(); err != nil && s.InitialCluster != "" {
				t.Errorf("etcd rejects EmbedConfig: %v", err)
			}
		})
	}
}

// gates is every etcd server feature gate and whether c enables it.
func gates(c *embed.Config) map[featuregate.Feature]bool {
	out := map[featuregate.Feature]bool{}
	for g := range features.DefaultEtcdServerFeatureGates {
		out[g] = c.ServerFeatureGate.Enabled(g)
	}
	return out
}

func urlList(us []url.URL) []string {
	out := make([]string, 0, len(us))
	for i := range us {
		out = append(out, us[i].String())
	}
	return out
}
