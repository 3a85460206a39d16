// Package lintest checks that an etcd cluster kept every write it
// acknowledged, linearizably, while a test did its worst to it: a Writer
// keeps writing and reading through a client during a scenario and records
// every call; Verify then reads every acknowledged write back and checks the
// history with porcupine; HashKVEqual compares the members' key-value hashes
// at one revision.
package lintest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RegisterKey is the one key every client puts to and reads.
const RegisterKey = "lin/register"

// AckPrefix prefixes the unique key each put writes beside the register, so
// every acknowledged put can be looked up afterwards.
const AckPrefix = "ack/"

// opTimeout bounds each call; a put that times out is ambiguous.
const opTimeout = 3 * time.Second

// Writer keeps writing to the cluster while a scenario runs. Each client
// alternates a put of a fresh value to the register key (its own unique key
// too, in the same transaction) and a read of the register. Every call is
// recorded with its start and end times, so the history can be checked for
// linearizability, and every acknowledged put must be readable afterwards.
type Writer struct {
	cli    *clientv3.Client
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	history []porcupine.Operation
	acked   []string
	unknown map[int]string // history index of an ambiguous put -> its own key
	errs    []string       // the first maxErrs put errors, for the failing test's log
	dropped int            // puts raft dropped (see Dropped)
	fails   []failure      // every failed put (see Unexplained)
	terms   []termAt       // the raft term each successful call saw
	next    int
}

// maxErrs bounds how many put errors a writer keeps.
const maxErrs = 10

type regInput struct {
	put   bool
	value int
}

type regOutput struct {
	value   int
	unknown bool // the put failed or timed out: it may or may not have happened
}

// registerModel is a single-key register: a put sets it, a get returns it.
var registerModel = porcupine.Model{
	Init: func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(regInput), output.(regOutput)
		if in.put {
			return true, in.value
		}
		return out.value == state.(int), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		if in.put {
			return fmt.Sprintf("put(%d) unknown=%v", in.value, out.unknown)
		}
		return fmt.Sprintf("get() -> %d", out.value)
	},
}

// Start runs a Writer with the given number of clients on cli until Stop or
// Verify (or the end of the test).
func Start(t testing.TB, cli *clientv3.Client, clients int) *Writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{cli: cli, start: time.Now(), cancel: cancel, unknown: map[int]string{}}
	for c := range clients {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				ok := w.put(ctx, c)
				ok = w.get(ctx, c) && ok
				pause := 20 * time.Millisecond
				if !ok {
					// The cluster is down or electing: keep trying, but do not
					// fill the history with calls that cannot succeed.
					pause = 250 * time.Millisecond
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	t.Cleanup(w.Stop)
	return w
}

func (w *Writer) now() int64 { return int64(time.Since(w.start)) }

func (w *Writer) put(ctx context.Context, client int) bool {
	w.mu.Lock()
	w.next++
	v := w.next
	w.mu.Unlock()
	own := fmt.Sprintf("%s%08d", AckPrefix, v)
	call := w.now()
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	resp, err := w.cli.Txn(octx).Then(clientv3.OpPut(RegisterKey, strconv.Itoa(v)), clientv3.OpPut(own, "x")).Commit()
	cancel()
	ret := w.now()
	op := porcupine.Operation{ClientId: client, Input: regInput{put: true, value: v}, Call: call, Output: regOutput{}, Return: ret}
	if err != nil {
		// Ambiguous: it may still take effect at any later time.
		op.Output, op.Return = regOutput{unknown: true}, math.MaxInt64
	}
	w.mu.Lock()
	w.history = append(w.history, op)
	if err == nil {
		w.acked = append(w.acked, own)
		w.terms = append(w.terms, termAt{at: ret, term: resp.Header.GetRaftTerm()})
	} else {
		w.unknown[len(w.history)-1] = own
		dropped := strings.Contains(err.Error(), raftProposalDropped)
		if dropped {
			w.dropped++
		}
		if ctx.Err() == nil { // not cut short by Stop
			w.fails = append(w.fails, failure{call: call, ret: ret, key: own, dropped: dropped, err: err.Error()})
		}
		if len(w.errs) < maxErrs {
			w.errs = append(w.errs, fmt.Sprintf("%s after %s: %v", time.Now().Format("15:04:05.000"), time.Duration(ret-call).Round(time.Millisecond), err))
		}
	}
	w.mu.Unlock()
	return err == nil
}

func (w *Writer) get(ctx context.Context, client int) bool {
	call := w.now()
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	resp, err := w.cli.Get(octx, RegisterKey)
	cancel()
	if err != nil {
		return false // a failed read has no effect
	}
	v := 0
	if len(resp.Kvs) == 1 {
		v, _ = strconv.Atoi(string(resp.Kvs[0].Value))
	}
	ret := w.now()
	w.mu.Lock()
	w.history = append(w.history, porcupine.Operation{ClientId: client, Input: regInput{}, Call: call, Output: regOutput{value: v}, Return: ret})
	w.terms = append(w.terms, termAt{at: ret, term: resp.Header.GetRaftTerm()})
	w.mu.Unlock()
	return true
}

// Stop ends the writer and waits for its clients (idempotent).
func (w *Writer) Stop() {
	w.cancel()
	w.wg.Wait()
}

// Acked is how many puts were acknowledged so far.
func (w *Writer) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// Verify stops the writer and checks, reading through cli, that it made
// progress, that every acknowledged write is there (nothing lost), and that
// the history is linearizable.
func (w *Writer) Verify(t testing.TB, cli *clientv3.Client) {
	t.Helper()
	w.Stop()
	if len(w.acked) < 10 {
		t.Fatalf("writer made little progress: %d acknowledged writes", len(w.acked))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, AckPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("read back acknowledged writes: %v", err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	for _, k := range w.acked {
		if !have[k] {
			t.Fatalf("acknowledged write %s lost (%d acknowledged, %d present)", k, len(w.acked), len(resp.Kvs))
		}
	}
	// An ambiguous put whose own key is absent from this (linearizable,
	// after every client stopped) read never took effect before it, so no
	// recorded read can have seen it: it is left out of the check, which
	// keeps the search small after a long outage. One whose key is present
	// did take effect, at an unknown time, and stays in.
	history := make([]porcupine.Operation, 0, len(w.history))
	dropped := 0
	for i, op := range w.history {
		if own, ok := w.unknown[i]; ok && !have[own] {
			dropped++
			continue
		}
		history = append(history, op)
	}
	res := porcupine.CheckOperationsTimeout(registerModel, history, time.Minute)
	if res != porcupine.Ok {
		t.Fatalf("history of %d operations is not linearizable: %v", len(history), res)
	}
	t.Logf("%d acknowledged writes all read back; %d operations linearizable (%d ambiguous puts that never took effect left out)",
		len(w.acked), len(history), dropped)
}

// HashKVEqual checks that every member in endpoints (client URLs reached
// through cli) has the same key-value hash at one common revision: the
// current revision read through cli, waiting (bounded) for members that have
// not applied it yet.
func HashKVEqual(t testing.TB, cli *clientv3.Client, endpoints []string) {
	t.Helper()
	if len(endpoints) == 0 {
		t.Fatal("HashKVEqual: no endpoints")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := cli.Get(ctx, RegisterKey)
	if err != nil {
		t.Fatalf("HashKVEqual: read the current revision: %v", err)
	}
	rev := resp.Header.Revision
	type result struct {
		hash       uint32
		compactRev int64
	}
	got := map[string]result{}
	for _, ep := range endpoints {
		for {
			hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
			h, err := cli.HashKV(hctx, ep, rev)
			hcancel()
			if err == nil {
				got[ep] = result{h.Hash, h.CompactRevision}
				break
			}
			// ErrFutureRev (not applied yet) or a member still connecting:
			// retry until the deadline.
			if ctx.Err() != nil || errors.Is(err, rpctypes.ErrCompacted) {
				t.Fatalf("HashKVEqual: HashKV of %s at revision %d: %v", ep, rev, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	eps := slices.Sorted(maps.Keys(got))
	first := got[eps[0]]
	for _, ep := range eps[1:] {
		if got[ep] != first {
			t.Fatalf("HashKVEqual: members diverge at revision %d: %s has hash %08x (compacted at %d), %s has %08x (compacted at %d)",
				rev, eps[0], first.hash, first.compactRev, ep, got[ep].hash, got[ep].compactRev)
		}
	}
	t.Logf("HashKV equal on %d members at revision %d: %08x", len(eps), rev, first.hash)
}
