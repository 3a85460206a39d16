package testcluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/systemd"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

// Agent is one run of node i's agent inside the test's process, with a
// real sd_notify socket and its log in the env's LogDir. A restart is a new
// Agent for the same config.
type Agent struct {
	I      int
	Config *config.Config
	Agent  *agent.Agent
	Notify *notifytest.Listener
	// Done receives Run's result once. A test that reads it puts it back,
	// for later readers.
	Done chan error

	cancel context.CancelFunc
	exited chan struct{}
}

// StartAgent runs an agent for node i's loaded cfg until ctx ends, Stop, or
// the end of the test; edit, when not nil, changes its options first. On
// Podman, stopping the agent stops its container too, and the container is
// removed when the test ends.
func (e *Env) StartAgent(ctx context.Context, i int, cfg *config.Config, edit func(*agent.Options)) *Agent {
	e.T.Helper()
	logFile := e.CreateLog(nodeLog(i))
	e.T.Cleanup(func() { logFile.Close() })
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
	rt, err := agent.NewRuntime(cfg, logger)
	if err != nil {
		e.T.Fatal(err)
	}
	l := notifytest.New(e.T)
	opts := agent.Options{
		Config: cfg, Identity: agent.NewIdentity(cfg, logger), Runtime: rt,
		Notifier: systemd.NewNotifier(l.Path(), logger), Logger: logger,
		WatchdogInterval: 100 * time.Millisecond,
	}
	if e.PodmanSocket != "" {
		opts.StopEtcdOnExit = true // the instance is gone
		e.T.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if r, ok := rt.(interface{ Remove(context.Context) error }); ok {
				if err := r.Remove(ctx); err != nil {
					e.T.Logf("remove node %d container: %v", i, err)
				}
			}
		})
	}
	if edit != nil {
		edit(&opts)
	}
	a, err := agent.New(opts)
	if err != nil {
		e.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Agent{I: i, Config: cfg, Agent: a, Notify: l, Done: make(chan error, 1), cancel: cancel, exited: make(chan struct{})}
	go func() {
		n.Done <- a.Run(ctx)
		close(n.exited)
	}()
	e.T.Cleanup(n.Stop)
	return n
}

// Index is the node's number.
func (n *Agent) Index() int { return n.I }

// Report is the agent's published state.
func (n *Agent) Report() report.NodeReport { return n.Agent.Report() }

// Stop shuts the agent down and waits for it (idempotent).
func (n *Agent) Stop() {
	n.cancel()
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		panic(fmt.Sprintf("node %d did not stop", n.I))
	}
}

// WaitReady waits for the agent's READY=1 and returns the notifications up
// to it; it gives up soon after the agent ends.
func (n *Agent) WaitReady(timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-n.exited:
			time.Sleep(500 * time.Millisecond) // its last notifications
			cancel()
		case <-ctx.Done():
		}
	}()
	msgs, err := n.Notify.UntilReady(ctx)
	if err != nil {
		var shown []string
		for _, m := range msgs {
			if m != "WATCHDOG=1" {
				shown = append(shown, m)
			}
		}
		state := "running"
		select {
		case <-n.exited:
			state = "ended"
		default:
		}
		r := n.Agent.Report()
		return msgs, fmt.Errorf("node %d not ready after %s (agent %s; report: %s %s)\nnotifications other than WATCHDOG=1: %q", n.I, timeout, state, r.Phase, r.Message, shown)
	}
	return msgs, nil
}
