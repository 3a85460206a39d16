package testcluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

// Process is one process a test started.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error // set when done is closed
}

// Spawn starts bin with args, stdout and stderr to a fresh log file (and
// to lines, when not nil), env added to the test's environment. The
// process is killed when the test ends.
func (e *Env) Spawn(bin, name string, env []string, lines func(string), args ...string) *Process {
	e.T.Helper()
	logFile := e.CreateLog(name)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Process{Name: name, Cmd: cmd, Log: logFile.Name(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	var pr, pw *os.File
	if lines != nil {
		var err error
		if pr, pw, err = os.Pipe(); err != nil {
			e.T.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = pw, pw
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		e.T.Fatalf("start %s: %v", name, err)
	}
	scanned := make(chan struct{})
	if lines == nil {
		close(scanned)
	} else {
		pw.Close() // the child holds its own copy
		go func() {
			defer close(scanned)
			defer pr.Close()
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				fmt.Fprintln(logFile, sc.Text())
				lines(sc.Text())
			}
			_, _ = io.Copy(logFile, pr) // a line too long to scan: keep draining
		}()
	}
	go func() {
		<-scanned // EOF: the child exited
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	e.T.Cleanup(p.Kill)
	return p
}

// Running says the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Done is closed when the process has exited; Err is then its exit error.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Kill sends SIGKILL (a frozen process too) and waits for the exit.
func (p *Process) Kill() {
	if p.Running() {
		_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal).
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
}

// Tail is the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ProcNode is node i as `etcd-agent run --config` processes, one per
// Start, across restarts: what a machine or an operator does to a node,
// the test does to it (kill, freeze, wipe).
type ProcNode struct {
	E          *Env
	Bin        string
	I          int
	ConfigPath string
	DataDir    string
	StatusFile string
	// Env is added to every process's environment.
	Env []string
	// Proc and Notify are the latest process and its sd_notify socket.
	Proc   *Process
	Notify *notifytest.Listener
}

// ProcNode writes node i's config (cfg, or NodeConfig(i, size) edited by
// the caller) for processes of bin.
func (e *Env) ProcNode(bin string, i int, cfg *config.Config) *ProcNode {
	e.T.Helper()
	path, loaded := e.WriteConfig(i, cfg)
	return &ProcNode{E: e, Bin: bin, I: i, ConfigPath: path, DataDir: loaded.Node.DataDir, StatusFile: loaded.Agent.StatusFile}
}

// Index is the node's number.
func (n *ProcNode) Index() int { return n.I }

// Start runs `etcd-agent run --config` with a fresh sd_notify socket.
func (n *ProcNode) Start() {
	n.E.T.Helper()
	if n.Proc != nil && n.Proc.Running() {
		n.E.T.Fatalf("node %d is already running", n.I)
	}
	n.Notify = notifytest.New(n.E.T)
	n.Proc = n.E.Spawn(n.Bin, nodeLog(n.I), append([]string{"NOTIFY_SOCKET=" + n.Notify.Path()}, n.Env...), nil, "run", "--config", n.ConfigPath)
}

// Kill is SIGKILL to the agent (embedded etcd dies with it; a container
// does not).
func (n *ProcNode) Kill() {
	if n.Proc != nil {
		n.Proc.Kill()
	}
}

// Stop asks the agent to shut down (SIGTERM) and waits for it; it kills
// the agent after a minute.
func (n *ProcNode) Stop() {
	if n.Proc == nil || !n.Proc.Running() {
		return
	}
	_ = n.Proc.Cmd.Process.Signal(syscall.SIGTERM)
	if _, err := n.Proc.Wait(time.Minute); err != nil {
		n.E.T.Logf("node %d: %v after SIGTERM: killing it", n.I, err)
		n.Proc.Kill()
	}
}

// Freeze and Thaw stop and continue the whole process (agent and its
// embedded etcd): a hung VM, not a dead one.
func (n *ProcNode) Freeze() {
	if err := n.Proc.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		n.E.T.Fatal(err)
	}
}

func (n *ProcNode) Thaw() {
	if err := n.Proc.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		n.E.T.Fatal(err)
	}
}

// Wipe deletes the node's data dir: a lost disk.
func (n *ProcNode) Wipe() {
	if err := os.RemoveAll(n.DataDir); err != nil {
		n.E.T.Fatal(err)
	}
}

// Report is the node's published state (the zero report when unreadable);
// it may be a stale file a killed process left: see Current.
func (n *ProcNode) Report() report.NodeReport {
	r, _ := report.Read(n.StatusFile)
	return r
}

// Current is the report of the running process, and false when the status
// file is not (yet) that process's.
func (n *ProcNode) Current() (report.NodeReport, bool) {
	r := n.Report()
	return r, n.Proc != nil && r.PID == n.Proc.Cmd.Process.Pid
}

// Describe is the node's state for a failure message.
func (n *ProcNode) Describe() string {
	if n.Proc == nil {
		return fmt.Sprintf("node %d: never started", n.I)
	}
	r, cur := n.Current()
	state := "running"
	if !n.Proc.Running() {
		state = fmt.Sprintf("exited (%v)", n.Proc.Err())
	}
	if !cur {
		return fmt.Sprintf("node %d: process %s, no status file from it yet; log tail:\n%s", n.I, state, n.Proc.Tail(8))
	}
	return fmt.Sprintf("node %d: process %s, phase %s, message %q, last error %q, decisions %s; log tail:\n%s",
		n.I, state, r.Phase, r.Message, r.LastError, Decisions(r), n.Proc.Tail(8))
}

// Decisions lists a report's decisions for a failure message.
func Decisions(r report.NodeReport) string {
	var out []string
	for _, d := range r.Decisions {
		out = append(out, string(d.Action)+": "+d.Reason)
	}
	return fmt.Sprintf("%q", out)
}

// WaitReady waits for READY=1 on the node's notify socket and returns the
// notifications up to it; it gives up soon after the process exits.
func (n *ProcNode) WaitReady(timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	exited := make(chan struct{})
	go func() {
		select {
		case <-n.Proc.done:
			// A dead agent never becomes ready: stop waiting at once.
			time.Sleep(500 * time.Millisecond)
			cancel()
		case <-ctx.Done():
		}
		close(exited)
	}()
	msgs, err := n.Notify.UntilReady(ctx)
	cancel()
	<-exited
	if err != nil {
		return msgs, fmt.Errorf("node %d not ready after %s: %w\n%s", n.I, timeout, err, n.Describe())
	}
	return msgs, nil
}

// NodeLogs is everything node i's agents logged so far, in this process
// or as processes.
func (e *Env) NodeLogs(i int) string { return e.Logs(nodeLog(i)) }

// nodeLog names node i's logs (CreateLog).
func nodeLog(i int) string { return fmt.Sprintf("node%d", i) }
