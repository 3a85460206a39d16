package agent_test

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// writer keeps writing to the cluster while a scenario runs; the writer
// itself and its checks live in internal/lintest, shared with test/fault.
type writer struct{ *lintest.Writer }

func startWriter(t *testing.T, cli *clientv3.Client, clients int) *writer {
	t.Helper()
	return &writer{lintest.Start(t, cli, clients)}
}

// verify stops the writer and checks that it made progress, that every
// acknowledged write is there, and that the history is linearizable.
func (w *writer) verify(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	w.Verify(t, cli)
}
