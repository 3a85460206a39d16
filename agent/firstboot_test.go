package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/membership"
)

// TestFirstBootKilledAtEachStep kills founders at the steps of a first boot
// (before the started record, after it and before etcd starts, after etcd's
// first WAL write) and starts them again with nobody's help: the cluster
// forms, once (one cluster ID on every member), and keeps every
// acknowledged write of a writer that runs from the restart on.
func TestFirstBootKilledAtEachStep(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []membership.HookStep // where founder i+1 is killed
	}{
		// A single founder killed after its record and before etcd.
		{"size1-recorded", []membership.HookStep{membership.HookRecorded}},
		// One founder's etcd ran; two were caught after their record: a
		// quorum of the founders holds a record and no WAL.
		{"ran-recorded-recorded", []membership.HookStep{membership.HookEtcdStarted, membership.HookRecorded, membership.HookRecorded}},
		// Every founder caught after its record.
		{"all-recorded", []membership.HookStep{membership.HookRecorded, membership.HookRecorded, membership.HookRecorded}},
		// One founder at each step.
		{"each-step", []membership.HookStep{membership.HookRecording, membership.HookRecorded, membership.HookEtcdStarted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			size := len(tc.steps)
			token := h.startDiscovery(ctx, size)
			cfgs := make([]*config.Config, size)
			killed := make([]*node, size)
			for i, step := range tc.steps {
				cfgs[i] = h.config(i+1, size, h.v3Discovery(token))
				crash := errors.New("killed at " + string(step))
				killed[i] = h.startWith(ctx, i+1, cfgs[i], func(o *agent.Options) {
					o.JoinHook = func(s membership.HookStep) error {
						if s == step {
							return crash
						}
						return nil
					}
				})
			}
			for i, n := range killed {
				select {
				case err := <-n.done:
					n.done <- err
					if err == nil || !strings.Contains(err.Error(), "killed at "+string(tc.steps[i])) {
						t.Fatalf("node %d ended with %v, want the kill at %s", i+1, err, tc.steps[i])
					}
				case <-time.After(readyTimeout):
					t.Fatalf("node %d never reached %s: %s", i+1, tc.steps[i], n.agent.Report().Message)
				}
				n.stop()
			}

			idx := make([]int, size)
			nodes := make([]*node, size)
			for i := range nodes {
				idx[i] = i + 1
				nodes[i] = h.start(ctx, i+1, cfgs[i])
			}
			cli := h.client(strings.Join(h.e.Endpoints(idx...), ","), cfgs[0].PKI.Dir)
			defer cli.Close()
			w := startWriter(t, cli, 2)
			for _, n := range nodes {
				n.waitReady(t, readyTimeout)
				// The WAL says the member ran from now on: the marker goes.
				if _, err := os.Stat(datadir.FirstStartPath(n.cfg.Node.DataDir)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("node %d: first-start marker still there once ready (%v)", n.i, err)
				}
			}
			time.Sleep(2 * time.Second) // let the writer write to the formed cluster
			h.e.Proof(w.Writer, cli, readyTimeout, func() string { return describeNodes(nodes) }, idx...)
			oneClusterID(t, h, cfgs[0].PKI.Dir, idx)
		})
	}
}

// oneClusterID fails unless every member of nodes idx reports one cluster ID.
func oneClusterID(t *testing.T, h *harness, certDir string, idx []int) {
	t.Helper()
	ids := map[uint64][]string{}
	for _, ep := range h.e.Endpoints(idx...) {
		c := h.client(ep, certDir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.Status(ctx, ep)
		cancel()
		c.Close()
		if err != nil {
			t.Fatalf("status of %s: %v", ep, err)
		}
		ids[st.Header.ClusterId] = append(ids[st.Header.ClusterId], ep)
	}
	if len(ids) != 1 {
		t.Fatalf("members report %d cluster IDs: %v", len(ids), ids)
	}
}

func describeNodes(nodes []*node) string {
	var b strings.Builder
	for _, n := range nodes {
		r := n.agent.Report()
		fmt.Fprintf(&b, "node %d: %s %s\n", n.i, r.Phase, r.Message)
	}
	return b.String()
}
