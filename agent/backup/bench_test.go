package backup_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/pki"
)

// benchIP is the benchmark's etcd process address (this branch's block).
const benchIP = "127.0.8.60"

// benchFixture is a plain etcd process (bin/etcd, TLS, client certs) holding
// about ETCD_AGENT_BENCH_DB_MIB MiB (default 1024) of data.
type benchFixture struct {
	dir      string
	etcd     *exec.Cmd
	bin      string // the module's bin/
	certDir  string
	endpoint string
	cli      *clientv3.Client
	snapshot string // one snapshot file, for the restore benchmarks
	dbSize   int64
}

var (
	fixtureOnce sync.Once
	fixture     *benchFixture
	fixtureErr  error
)

// BenchmarkSnapshot runs, side by side in one process against one etcd
// with ~1 GiB of data: the agent's snapshot (backup.Save: stream, etcd's
// sha256 trailer checked, plus HashKV and key count at the revision for
// verification) against `etcdctl snapshot save`, and backup.Restore
// (revision bumped, compacted) against `etcdutl snapshot restore
// --bump-revision --mark-compacted`. Each iteration runs both, in
// alternating order, so a busy shared machine weighs on both alike; the
// figures are agent-s/op, tool-s/op and their ratio. Run with -benchtime 3x.
func BenchmarkSnapshot(b *testing.B) {
	fx := benchSetup(b)
	ctx := context.Background()
	b.Logf("database %d MiB at %s", fx.dbSize>>20, fx.endpoint)
	sideBySide(b, "save", fx.dbSize, func(b *testing.B) {
		file, m, err := backup.Save(ctx, backup.SaveOptions{Client: fx.cli, Dir: b.TempDir(), Cluster: "bench", TakenBy: "bench", Logger: benchLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		if m.KeyCount == 0 {
			b.Fatal("no keys")
		}
		defer os.Remove(file)
	}, func(b *testing.B) {
		file := filepath.Join(b.TempDir(), "s.db")
		run(b, filepath.Join(fx.bin, "etcdctl"), "snapshot", "save", file, "--endpoints", fx.endpoint,
			"--cacert", filepath.Join(fx.certDir, pki.CACertFile), "--cert", filepath.Join(fx.certDir, pki.ClientCertFile),
			"--key", filepath.Join(fx.certDir, pki.ClientKeyFile))
		defer os.Remove(file)
	})
	peer := "https://" + benchIP + ":2380"
	sideBySide(b, "restore", fx.dbSize, func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "data")
		if err := backup.Restore(ctx, fx.snapshot, backup.RestoreOptions{DataDir: dir, Name: "r", PeerURL: peer, ClusterToken: "bench"}); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}, func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "data")
		run(b, filepath.Join(fx.bin, "etcdutl"), "snapshot", "restore", fx.snapshot, "--data-dir", dir, "--name", "r",
			"--initial-cluster", "r="+peer, "--initial-advertise-peer-urls", peer, "--initial-cluster-token", "bench",
			"--bump-revision", strconv.Itoa(backup.DefaultRevisionBump), "--mark-compacted")
		defer os.RemoveAll(dir)
	})
}

// sideBySide runs agent and tool once per iteration, alternating which goes
// first, and reports each one's mean time and the ratio.
func sideBySide(b *testing.B, name string, bytes int64, agent, tool func(*testing.B)) {
	b.Run(name, func(b *testing.B) {
		b.SetBytes(2 * bytes)
		var ta, tt time.Duration
		timed := func(f func(*testing.B)) time.Duration {
			start := time.Now()
			f(b)
			return time.Since(start)
		}
		i := 0
		for b.Loop() {
			if i%2 == 0 {
				ta += timed(agent)
				tt += timed(tool)
			} else {
				tt += timed(tool)
				ta += timed(agent)
			}
			i++
		}
		b.ReportMetric(ta.Seconds()/float64(i), "agent-s/op")
		b.ReportMetric(tt.Seconds()/float64(i), "tool-s/op")
		b.ReportMetric(ta.Seconds()/tt.Seconds(), "agent/tool")
	})
}

// benchLogger shows Save's step timings in the benchmark's output.
func benchLogger(b *testing.B) *slog.Logger {
	return slog.New(slog.NewTextHandler(bLogWriter{b}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type bLogWriter struct{ b *testing.B }

func (w bLogWriter) Write(p []byte) (int, error) {
	w.b.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func run(b *testing.B, bin string, args ...string) {
	b.Helper()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
}

func benchSetup(b *testing.B) *benchFixture {
	b.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "bin")
	for _, tool := range []string{"etcd", "etcdctl", "etcdutl"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			b.Skipf("bin/%s missing (make etcd-binaries): %v", tool, err)
		}
	}
	fixtureOnce.Do(func() { _, fixtureErr = startFixture(bin) })
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixture
}

// TestMain stops the benchmark's etcd process, which the benchmarks share.
func TestMain(m *testing.M) {
	code := m.Run()
	if fixture != nil {
		_ = fixture.etcd.Process.Kill()
		_ = fixture.etcd.Wait()
		_ = os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// startFixture runs etcd and fills it; TestMain stops it.
func startFixture(bin string) (*benchFixture, error) {
	dir, err := os.MkdirTemp("", "etcd-agent-bench-")
	if err != nil {
		return nil, err
	}
	caCert, caKey, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{}, time.Now())
	if err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA(caCert, caKey, time.Now())
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "pki")
	if _, err := ca.EnsureNodeCerts(pki.NodeRequest{Dir: certDir, NodeIP: netip.MustParseAddr(benchIP), Validity: 24 * time.Hour, RenewBefore: time.Hour, Now: time.Now()}); err != nil {
		return nil, err
	}
	cport, pport, err := ports()
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("https://%s:%d", benchIP, cport)
	peer := fmt.Sprintf("https://%s:%d", benchIP, pport)
	cmd := exec.Command(filepath.Join(bin, "etcd"), "--name", "bench", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "bench="+peer,
		"--cert-file", filepath.Join(certDir, pki.ServerCertFile), "--key-file", filepath.Join(certDir, pki.ServerKeyFile),
		"--trusted-ca-file", filepath.Join(certDir, pki.CACertFile), "--client-cert-auth",
		"--peer-cert-file", filepath.Join(certDir, pki.PeerCertFile), "--peer-key-file", filepath.Join(certDir, pki.PeerKeyFile),
		"--peer-trusted-ca-file", filepath.Join(certDir, pki.CACertFile), "--peer-client-cert-auth",
		"--quota-backend-bytes", strconv.Itoa(8<<30), "--log-level", "warn")
	logf, _ := os.Create(filepath.Join(dir, "etcd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with a crashed benchmark
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	fixture = &benchFixture{dir: dir, etcd: cmd}
	tlsCfg, err := pki.ClientTLS(certDir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	mib := 1024
	if v, err := strconv.Atoi(os.Getenv("ETCD_AGENT_BENCH_DB_MIB")); err == nil && v > 0 {
		mib = v
	}
	const valueSize = 256 << 10
	n := mib << 20 / valueSize
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			val := make([]byte, valueSize)
			for i := w; i < n; i += 8 {
				_, _ = rand.Read(val)
				var err error
				for try := 0; try < 20; try++ {
					if _, err = cli.Put(ctx, fmt.Sprintf("/bench/%06d", i), string(val)); err == nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("fill: %w", err)
	}
	fx := fixture
	fx.bin, fx.certDir, fx.endpoint, fx.cli = bin, certDir, client, cli
	// One snapshot for the restore benchmarks; it also warms the caches.
	file, m, err := backup.Save(ctx, backup.SaveOptions{Client: cli, Dir: dir, Cluster: "bench", TakenBy: "bench"})
	if err != nil {
		return nil, err
	}
	fx.snapshot, fx.dbSize = file, m.Size
	return fx, nil
}

func ports() (int, int, error) {
	var out [2]int
	for i := range out {
		l, err := net.Listen("tcp", benchIP+":0")
		if err != nil {
			return 0, 0, err
		}
		out[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	return out[0], out[1], nil
}
