package lintest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Failed is how many puts failed or timed out so far (ambiguous: each may or
// may not have taken effect), not counting one cut short by Stop.
func (w *Writer) Failed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fails)
}

// Errors are the first put errors (when, after how long, what), for the
// log of a scenario whose writes must not fail.
func (w *Writer) Errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errs...)
}

// raftProposalDropped is how etcd reports a proposal its raft dropped
// before appending it to the log (raft.ErrProposalDropped), e.g. one that
// reached the leader while it transferred leadership.
const raftProposalDropped = "raft proposal dropped"

// Dropped is how many of the failed puts etcd reported as dropped by raft
// before they entered the log: refused, safe for a client to retry. The
// history still treats them as ambiguous (the conservative reading).
func (w *Writer) Dropped() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// failure is one failed put.
type failure struct {
	call, ret int64 // since the writer's start
	key       string
	dropped   bool // etcd said raft dropped it
	err       string
}

// termAt is the raft term a successful call's response carried.
type termAt struct {
	at   int64
	term uint64
}

// Unexplained stops the writer and returns the failed puts that etcd's
// leader transfer does not explain, read through cli. A put is explained
// when raft reported it dropped, or when it never took effect (its own key
// is absent) and the raft term changed while it waited: a leader that hands
// leadership over drops the proposals other members forward to it without a
// word ("TODO: drain all requests" in etcd's MoveLeader), and the forwarding
// member answers only at its request timeout. Every other failed put — one
// that took effect, or failed with no leader change around it — is returned,
// described.
func (w *Writer) Unexplained(t testing.TB, cli *clientv3.Client) []string {
	t.Helper()
	w.Stop()
	w.mu.Lock()
	fails, terms := slices.Clone(w.fails), slices.Clone(w.terms)
	w.mu.Unlock()
	slices.SortFunc(terms, func(a, b termAt) int { return int(a.at - b.at) })
	var out []string
	for _, f := range fails {
		if f.dropped {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cli.Get(ctx, f.key, clientv3.WithCountOnly())
		cancel()
		if err != nil {
			t.Fatalf("read back failed put %s: %v", f.key, err)
		}
		before, after := termAround(terms, f.call, f.ret)
		took := resp.Count > 0
		if !took && after > before && before > 0 {
			continue
		}
		out = append(out, fmt.Sprintf("put %s after %s: %s (took effect: %v; raft term %d before, %d after)",
			f.key, time.Duration(f.ret-f.call).Round(time.Millisecond), f.err, took, before, after))
	}
	return out
}

// termAround is the newest term seen by a call that returned before call and
// the oldest seen by one that returned after ret (0 when none).
func termAround(terms []termAt, call, ret int64) (before, after uint64) {
	for _, t := range terms {
		if t.at <= call {
			before = t.term
		}
		if t.at >= ret && after == 0 {
			after = t.term
		}
	}
	return before, after
}
