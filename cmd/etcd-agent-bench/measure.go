package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/version"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Loopback blocks of the clusters, apart from the tests' and `make local`'s.
const (
	agentFirstIP = "127.0.0.61"
	agentDisc    = "127.0.0.60:23795"
	plainFirstIP = "127.0.0.71"
)

func defaultImage() string { return config.DefaultImageRepo + ":v" + version.Version }

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func (b *bench) binarySize(context.Context) error {
	size := func(name string) (float64, error) {
		fi, err := os.Stat(filepath.Join(b.o.bin, name))
		if err != nil {
			return 0, err
		}
		return float64(fi.Size()) / (1 << 20), nil
	}
	a, err := size("etcd-agent")
	if err != nil {
		return err
	}
	e, err := size("etcd")
	if err != nil {
		return err
	}
	b.add(row{what: "binary size (stripped)", agent: a, plain: e, unit: "MiB", note: "etcd-agent embeds etcd for local mode; plain = the etcd binary"})
	return nil
}

// embedded measures startup, load and status on the embedded runtime
// against plain etcd processes, one fresh pair of clusters per run.
func (b *bench) embedded(ctx context.Context) error {
	var startA, agentsA, startP, stA, stP []float64
	var loadA, loadP []loadResult
	for r := range b.o.runs {
		dir := filepath.Join(b.o.dir, fmt.Sprintf("embedded-%d", r))
		ac, took, agents, err := b.startAgents(ctx, filepath.Join(dir, "agent"), agentFirstIP, agentDisc, "embedded")
		if err != nil {
			return err
		}
		startA, agentsA = append(startA, took.Seconds()), append(agentsA, agents.Seconds())
		la, err := b.load(ctx, ac)
		if err == nil {
			loadA = append(loadA, la)
			var st float64
			st, err = b.statusLatency(ctx, filepath.Join(dir, "agent", "node1", "config.yaml"))
			stA = append(stA, st)
		}
		if serr := ac.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}

		pc, took, err := b.startPlain(ctx, filepath.Join(dir, "plain"), loopbackIPs(plainFirstIP, 3))
		if err != nil {
			return err
		}
		startP = append(startP, took.Seconds())
		lp, err := b.load(ctx, pc)
		if err == nil {
			loadP = append(loadP, lp)
			var st float64
			st, err = b.etcdctlLatency(ctx, pc)
			stP = append(stP, st)
		}
		_ = pc.stop()
		if err != nil {
			return err
		}
	}
	b.add(row{what: "start to all 3 ready (embedded)", agent: median(startA), plain: median(startP), unit: "s",
		note: "agent: local up (CA, discovery service, certs, v3 discovery, READY=1); plain: static cluster, linearizable read"})
	b.add(row{what: "  of which the agents", agent: median(agentsA), plain: median(startP), unit: "s",
		note: "from the agents' start (CA and discovery service already up) to the last READY=1"})
	b.addLoad("(embedded)", loadA, loadP)
	b.add(row{what: "status latency", agent: median(stA), plain: median(stP), unit: "ms",
		note: "etcd-agent status vs etcdctl endpoint status --cluster + endpoint health --cluster"})
	return nil
}

type loadResult struct{ putRate, putP99, getRate, getP99 float64 }

// addLoad reports the medians of the load runs through both clusters.
func (b *bench) addLoad(where string, agent, plain []loadResult) {
	med := func(rs []loadResult, f func(loadResult) float64) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	for _, m := range []struct {
		what, unit, note string
		f                func(loadResult) float64
	}{
		{"put throughput", "ops/s", fmt.Sprintf("%d puts of %d B, %d clients", b.o.ops, b.o.valueLen, b.o.clients), func(r loadResult) float64 { return r.putRate }},
		{"put p99 latency", "ms", "", func(r loadResult) float64 { return r.putP99 }},
		{"range throughput", "ops/s", fmt.Sprintf("%d linearizable single-key gets, %d clients", b.o.ops, b.o.clients), func(r loadResult) float64 { return r.getRate }},
		{"range p99 latency", "ms", "", func(r loadResult) float64 { return r.getP99 }},
	} {
		b.add(row{what: m.what + " " + where, agent: med(agent, m.f), plain: med(plain, m.f), unit: m.unit, note: m.note})
	}
}

// load runs ops puts, then ops linearizable gets of the same keys, spread
// over the configured clients, through every endpoint of c.
func (b *bench) load(ctx context.Context, c *cluster) (loadResult, error) {
	cli, err := c.client()
	if err != nil {
		return loadResult{}, err
	}
	defer cli.Close()
	value := strings.Repeat("v", b.o.valueLen)
	phase := func(do func(ctx context.Context, i int) error) (rate, p99 float64, err error) {
		lat := make([]float64, b.o.ops)
		var wg sync.WaitGroup
		errs := make(chan error, b.o.clients)
		next := make(chan int)
		start := time.Now()
		for range b.o.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					t := time.Now()
					octx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := do(octx, i)
					cancel()
					if err != nil {
						errs <- err
						return
					}
					lat[i] = ms(time.Since(t))
				}
			}()
		}
	feed:
		for i := range b.o.ops {
			select {
			case next <- i:
			case err = <-errs:
				break feed
			}
		}
		close(next)
		wg.Wait()
		if err == nil && len(errs) > 0 {
			err = <-errs
		}
		if err != nil {
			return 0, 0, fmt.Errorf("load: %w", err)
		}
		elapsed := time.Since(start)
		slices.Sort(lat)
		return float64(b.o.ops) / elapsed.Seconds(), lat[len(lat)*99/100], nil
	}
	key := func(i int) string { return fmt.Sprintf("bench/%08d", i) }
	var r loadResult
	if r.putRate, r.putP99, err = phase(func(ctx context.Context, i int) error {
		_, err := cli.Put(ctx, key(i), value)
		return err
	}); err != nil {
		return r, err
	}
	r.getRate, r.getP99, err = phase(func(ctx context.Context, i int) error {
		resp, err := cli.Get(ctx, key(i))
		if err == nil && len(resp.Kvs) != 1 {
			err = fmt.Errorf("key %s missing after its put was acknowledged", key(i))
		}
		return err
	})
	return r, err
}

// statusLatency is the median wall time of `etcd-agent status` (a whole
// process, as an operator runs it) over 5 calls.
func (b *bench) statusLatency(ctx context.Context, cfgPath string) (float64, error) {
	return timeCommands(ctx, 5, [][]string{{filepath.Join(b.o.bin, "etcd-agent"), "status", "--config", cfgPath}}, func(err error) error {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			return nil // unhealthy is an answer too; the figure is the time to it
		}
		return err
	})
}

// etcdctlLatency is the plain recipe's view: endpoint status and endpoint
// health for the whole cluster, two etcdctl calls with the client cert.
func (b *bench) etcdctlLatency(ctx context.Context, c *cluster) (float64, error) {
	common := []string{"--endpoints", c.endpoints[0], "--cacert", filepath.Join(c.certDir, pki.CACertFile),
		"--cert", filepath.Join(c.certDir, pki.ClientCertFile), "--key", filepath.Join(c.certDir, pki.ClientKeyFile), "-w", "table"}
	ctl := filepath.Join(b.o.bin, "etcdctl")
	return timeCommands(ctx, 5, [][]string{
		append([]string{ctl, "endpoint", "status", "--cluster"}, common...),
		append([]string{ctl, "endpoint", "health", "--cluster"}, common...),
	}, func(err error) error { return err })
}

// timeCommands runs the command sequence n times and returns the median
// wall time of one sequence in milliseconds.
func timeCommands(ctx context.Context, n int, seq [][]string, accept func(error) error) (float64, error) {
	var samples []float64
	for range n {
		start := time.Now()
		for _, argv := range seq {
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				if err = accept(err); err != nil {
					return 0, fmt.Errorf("%s: %w\n%s", strings.Join(argv[:2], " "), err, out)
				}
			}
		}
		samples = append(samples, ms(time.Since(start)))
	}
	return median(samples), nil
}

// podmanRows measures the container path: startup of `local up --runtime
// podman` against plain etcd containers, then three `etcd-agent run`
// processes (the production service) supervising their containers, idle.
func (b *bench) podmanRows(ctx context.Context) error {
	if b.o.podman == "" {
		b.log.Warn("no Podman socket (-podman-socket or ETCD_AGENT_TEST_PODMAN_SOCKET): container rows skipped")
		return nil
	}
	var startA, agentsA, startP []float64
	var loadA, loadP []loadResult
	var agentDir string
	for r := range b.o.runs {
		dir := filepath.Join(b.o.dir, fmt.Sprintf("podman-%d", r))
		agentDir = filepath.Join(dir, "agent")
		ac, took, agents, err := b.startAgents(ctx, agentDir, agentFirstIP, agentDisc, "podman")
		if err != nil {
			return err
		}
		startA, agentsA = append(startA, took.Seconds()), append(agentsA, agents.Seconds())
		la, err := b.load(ctx, ac)
		if serr := ac.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		loadA = append(loadA, la)
		if r < b.o.runs-1 {
			if err := removeContainers(ctx, agentDir); err != nil {
				return err
			}
		}
		pc, took, err := b.startPlainContainers(ctx, filepath.Join(dir, "plain"), loopbackIPs(plainFirstIP, 3))
		if err != nil {
			return err
		}
		startP = append(startP, took.Seconds())
		lp, err := b.load(ctx, pc)
		if serr := pc.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		loadP = append(loadP, lp)
	}
	b.add(row{what: "start to all 3 ready (podman)", agent: median(startA), plain: median(startP), unit: "s",
		note: "agent: local up --runtime podman; plain: the same containers created through the API by hand"})
	b.add(row{what: "  of which the agents", agent: median(agentsA), plain: median(startP), unit: "s",
		note: "from the agents' start (CA and discovery service already up) to the last READY=1"})
	b.addLoad("(podman)", loadA, loadP)
	defer func() { _ = removeContainers(context.Background(), agentDir) }()
	return b.idleAgents(ctx, agentDir)
}

// idleAgents starts `etcd-agent run` for the three nodes of dir (they
// restart their members in place), waits for READY, and samples each
// agent's RSS and CPU over the idle period.
func (b *bench) idleAgents(ctx context.Context, dir string) error {
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
			_ = p.Wait()
		}
	}()
	var statusFiles []string
	for i := 1; i <= 3; i++ {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		logf, err := os.Create(filepath.Join(nodeDir, "run.log"))
		if err != nil {
			return err
		}
		defer logf.Close()
		cmd := exec.Command(filepath.Join(b.o.bin, "etcd-agent"), "run", "--config", filepath.Join(nodeDir, "config.yaml"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		statusFiles = append(statusFiles, filepath.Join(nodeDir, "status.json"))
	}
	deadline := time.Now().Add(readyTimeout)
	for _, f := range statusFiles {
		for {
			r, err := report.Read(f)
			if err == nil && r.Ready && r.PID != 0 && r.Phase == report.PhaseHealthy {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("etcd-agent run not ready (%s): %v %s", f, err, r.Message)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	time.Sleep(5 * time.Second) // let start-up garbage settle
	var rss, cpu []float64
	before := make([]float64, len(procs))
	for i, p := range procs {
		kb, ticks, err := procStats(p.Process.Pid)
		if err != nil {
			return err
		}
		rss = append(rss, kb/1024)
		before[i] = ticks
	}
	select {
	case <-time.After(b.o.idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	for i, p := range procs {
		_, ticks, err := procStats(p.Process.Pid)
		if err != nil {
			return err
		}
		cpu = append(cpu, (ticks-before[i])/clockTicks/b.o.idle.Seconds()*100)
	}
	b.add(row{what: "agent RSS at idle", agent: median(rss), unit: "MiB", note: "etcd-agent run, Podman runtime (etcd in its container)"})
	b.add(row{what: "agent CPU at idle", agent: median(cpu), unit: "% of a core", note: fmt.Sprintf("over %s of supervision (health every 5s)", b.o.idle)})
	return nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times on Linux.
const clockTicks = 100

// procStats reads a process's resident set (KiB) and CPU time (ticks).
func procStats(pid int) (rssKB, ticks float64, err error) {
	st, err := readFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(st, "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		}
	}
	stat, err := readFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(stat[strings.LastIndex(stat, ")")+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return rssKB, utime + stime, nil
}

// removeContainers deletes the containers of the nodes under dir.
func removeContainers(ctx context.Context, dir string) error {
	var errs []error
	for i := 1; i <= 3; i++ {
		path := filepath.Join(dir, fmt.Sprintf("node%d", i), "config.yaml")
		cfg, _, err := config.Load(config.Source{Path: path, DefaultImageTag: "v" + version.Version, UID: os.Getuid()})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rt, err := agent.NewRuntime(cfg, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, rt.Remove(ctx))
	}
	return errors.Join(errs...)
}
