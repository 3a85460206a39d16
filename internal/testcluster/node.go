package testcluster

import (
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Node is one agent under test, running in the test's process (*Agent) or
// as `etcd-agent run` processes (*ProcNode).
type Node interface {
	// Index is the node's number: it lives at Env.IP(Index()).
	Index() int
	// WaitReady waits for the agent's READY=1 and returns the
	// notifications up to it.
	WaitReady(timeout time.Duration) ([]string, error)
	// Report is the agent's published state.
	Report() report.NodeReport
	// Stop shuts the agent down and waits for it.
	Stop()
}

var (
	_ Node = (*Agent)(nil)
	_ Node = (*ProcNode)(nil)
)

// WaitReady waits for every node's READY, in order, and fails the test at
// the first that is not ready within timeout.
func WaitReady(t testing.TB, timeout time.Duration, nodes ...Node) {
	t.Helper()
	for _, n := range nodes {
		if _, err := n.WaitReady(timeout); err != nil {
			t.Fatal(err)
		}
	}
}
