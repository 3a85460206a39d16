package agent_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// writer keeps writing to the cluster while a scenario runs. Each client
// alternates a put of a fresh value to one register key (its own unique key
// too) and a read of the register. Every call is recorded with its start and
// end times, so the history can be checked for linearizability, and every
// acknowledged put must be readable afterwards.
type writer struct {
	cli     *clientv3.Client
	start   time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	history []porcupine.Operation
	acked   []string
	next    int
}

const registerKey = "lin/register"

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

func startWriter(t *testing.T, cli *clientv3.Client, clients int) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{cli: cli, start: time.Now(), cancel: cancel}
	for c := range clients {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				w.put(ctx, c)
				w.get(ctx, c)
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(w.stop)
	return w
}

func (w *writer) now() int64 { return int64(time.Since(w.start)) }

func (w *writer) put(ctx context.Context, client int) {
	w.mu.Lock()
	w.next++
	v := w.next
	w.mu.Unlock()
	own := fmt.Sprintf("ack/%08d", v)
	call := w.now()
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := w.cli.Txn(octx).Then(clientv3.OpPut(registerKey, strconv.Itoa(v)), clientv3.OpPut(own, "x")).Commit()
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
	}
	w.mu.Unlock()
}

func (w *writer) get(ctx context.Context, client int) {
	call := w.now()
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	resp, err := w.cli.Get(octx, registerKey)
	cancel()
	if err != nil {
		return // a failed read has no effect
	}
	v := 0
	if len(resp.Kvs) == 1 {
		v, _ = strconv.Atoi(string(resp.Kvs[0].Value))
	}
	w.mu.Lock()
	w.history = append(w.history, porcupine.Operation{ClientId: client, Input: regInput{}, Call: call, Output: regOutput{value: v}, Return: w.now()})
	w.mu.Unlock()
}

func (w *writer) stop() {
	w.cancel()
	w.wg.Wait()
}

// verify stops the writer and checks that it made progress, that every
// acknowledged write is there, and that the history is linearizable.
func (w *writer) verify(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	w.stop()
	if len(w.acked) < 10 {
		t.Fatalf("writer made little progress: %d acknowledged writes", len(w.acked))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "ack/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
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
	res := porcupine.CheckOperationsTimeout(registerModel, w.history, time.Minute)
	if res != porcupine.Ok {
		t.Fatalf("history of %d operations is not linearizable: %v", len(w.history), res)
	}
	t.Logf("%d acknowledged writes all read back; %d operations linearizable", len(w.acked), len(w.history))
}
