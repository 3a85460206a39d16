// Command etcd-agent-bench measures etcd-agent against the baseline our
// users would otherwise run: plain etcd started by hand with a static initial
// cluster and the same flags, measured in the same run on the same machine.
// Every figure is the median of -runs runs.
//
//	go run ./cmd/etcd-agent-bench            (make bench runs it with the Go benchmarks)
//
// It measures, for a 3-node TLS cluster on loopback addresses: time from start
// to all nodes ready (agent READY=1 vs plain etcd answering a linearizable
// read), embedded and, when a Podman socket is given, in containers; put and
// range throughput and p99 latency through each cluster; `etcd-agent status`
// against `etcdctl endpoint status` + `endpoint health`; the agent's RSS and
// CPU over an idle minute (Podman runtime, so etcd is not in the agent's
// process); and binary sizes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type options struct {
	runs     int
	bin      string // directory with etcd-agent, etcd, etcdctl
	dir      string // scratch directory
	podman   string // Podman socket URI; empty: no Podman rows
	idle     time.Duration
	ops      int
	clients  int
	valueLen int
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "runs per figure (the median is reported)")
	flag.StringVar(&o.bin, "bin", "bin", "directory holding etcd-agent, etcd and etcdctl (make build etcd-binaries)")
	flag.StringVar(&o.dir, "dir", "", "scratch directory (default: a new temporary one, removed afterwards)")
	flag.StringVar(&o.podman, "podman-socket", os.Getenv("ETCD_AGENT_TEST_PODMAN_SOCKET"), "Podman API socket for the container rows (empty: skipped)")
	flag.DurationVar(&o.idle, "idle", time.Minute, "how long to watch an idle agent's CPU")
	flag.IntVar(&o.ops, "ops", 3000, "operations per load run")
	flag.IntVar(&o.clients, "clients", 16, "concurrent load clients")
	flag.IntVar(&o.valueLen, "value-size", 256, "bytes per put value")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "etcd-agent-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	var err error
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	for _, b := range []string{"etcd-agent", "etcd", "etcdctl"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s missing in %s: run make build etcd-binaries", b, o.bin)
		}
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "etcd-agent-bench"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dir)
	}
	b := &bench{o: o, log: log}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"binary size", b.binarySize},
		{"embedded: startup, load, status", b.embedded},
		{"podman: startup, idle agent", b.podmanRows},
	}
	for _, s := range steps {
		log.Info("measuring", "what", s.name)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	b.print(os.Stdout)
	return nil
}
