package schedule_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup/schedule"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
)

func TestSlotOf(t *testing.T) {
	base := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if schedule.SlotOf(base, 30*time.Minute) != schedule.SlotOf(base.Add(29*time.Minute), 30*time.Minute) ||
		schedule.SlotOf(base, 30*time.Minute)+1 != schedule.SlotOf(base.Add(30*time.Minute), 30*time.Minute) {
		t.Fatal("slots are not the intervals")
	}
}

// TestOneClaimPerSlot: agents racing for a slot on a real cluster: exactly
// one wins while it holds the claim; once the slot is recorded, nobody
// claims it again; a claim released without recording lets the next win.
func TestOneClaimPerSlot(t *testing.T) {
	c := statustest.Start(t, "127.0.8.15")
	ctx := context.Background()
	clients := make([]*clientv3.Client, 5)
	for i := range clients {
		cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.OperatorTLS(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		clients[i] = cli
	}
	race := func(slot int64) []*schedule.Claim {
		var mu sync.Mutex
		var won []*schedule.Claim
		var wg sync.WaitGroup
		for i, cli := range clients {
			wg.Go(func() {
				claim, ok, err := schedule.TryClaim(ctx, cli, slot, "agent-"+string(rune('a'+i)))
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					won = append(won, claim)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return won
	}
	won := race(7)
	if len(won) != 1 {
		t.Fatalf("%d agents won slot 7", len(won))
	}
	// Released without recording (the holder failed early): claimable again.
	won[0].Release()
	won = race(7)
	if len(won) != 1 {
		t.Fatalf("%d agents won slot 7 after a release", len(won))
	}
	if err := schedule.Update(ctx, clients[0], func(r *report.Backup) { r.Slot = 7 }); err != nil {
		t.Fatal(err)
	}
	won[0].Release()
	if won = race(7); len(won) != 0 {
		t.Fatalf("slot 7 claimed again after it was recorded")
	}
	if won = race(8); len(won) != 1 {
		t.Fatalf("%d agents won slot 8", len(won))
	}
	won[0].Release()

	// Concurrent updates of the record all land (compare-and-swap).
	var n atomic.Int64
	var wg sync.WaitGroup
	for _, cli := range clients {
		wg.Go(func() {
			if err := schedule.Update(ctx, cli, func(r *report.Backup) { r.Slot++ }); err != nil {
				t.Error(err)
				return
			}
			n.Add(1)
		})
	}
	wg.Wait()
	rec, err := schedule.Read(ctx, clients[0])
	if err != nil || rec.Slot != 7+n.Load() {
		t.Fatalf("record slot %d after %d increments from 7: %v", rec.Slot, n.Load(), err)
	}
}

// TestProtected: retention keeps the newest verified snapshot through any
// number of failed verifications after it.
func TestProtected(t *testing.T) {
	ok := func(name string) *report.Verification { return &report.Verification{Name: name, OK: true} }
	bad := &report.Verification{Name: "s3", Error: "list s3://b/p: unreachable"}
	for _, c := range []struct {
		name string
		rec  report.Backup
		want []string
	}{
		{"never verified", report.Backup{}, nil},
		{"verified", report.Backup{Verification: ok("s1"), Verified: ok("s1")}, []string{"s1"}},
		{"a failed verification after a good one", report.Backup{Verification: bad, Verified: ok("s1")}, []string{"s1"}},
		{"record of an older agent: its last verification good", report.Backup{Verification: ok("s1")}, []string{"s1"}},
		{"record of an older agent: its last verification failed", report.Backup{Verification: bad}, nil},
	} {
		if got := schedule.Protected(c.rec); !slices.Equal(got, c.want) {
			t.Errorf("%s: protected %v, want %v", c.name, got, c.want)
		}
	}
}
