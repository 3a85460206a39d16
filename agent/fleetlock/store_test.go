package fleetlock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/status/statustest"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// TestSlotsAreTransactions: against a real etcd member, agents racing for
// a group's slots never share one, a free compares the revision it read,
// and a release by hand frees a removed member's slot or a holder that is
// back.
func TestSlotsAreTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd member")
	}
	c := statustest.Start(t, testnet.Take(t).IP(10))
	cli, err := cluster.Dial(c.CertDir, c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Eight agents race for the group's two slots, each having read the
	// slots free: exactly two win, in different slots.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []fleetlock.Holder
	var lost int
	for i := range 8 {
		wg.Go(func() {
			h, err := fleetlock.Take(ctx, cli, fleetlock.Holder{ID: fmt.Sprintf("z%d", i), Group: "default", MemberID: "dead", Since: time.Now()}, 2, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, h)
			case errors.Is(err, fleetlock.ErrSlotChanged):
				lost++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(won) != 2 || lost != 6 || won[0].Slot == won[1].Slot {
		t.Fatalf("8 racing takes of 2 slots: won %+v, lost %d; want two winners in slots 0 and 1", won, lost)
	}
	held, err := fleetlock.Read(ctx, cli)
	if err != nil || len(held) != 2 || held[0].Slot != 0 || held[1].Slot != 1 {
		t.Fatalf("Read = %+v, %v; want the two winners by slot", held, err)
	}

	// A free that read an older revision changes nothing.
	stale := held[0]
	stale.ModRevision--
	if err := fleetlock.Free(ctx, cli, stale); !errors.Is(err, fleetlock.ErrSlotChanged) {
		t.Errorf("Free with a stale revision: %v, want ErrSlotChanged", err)
	}
	if err := fleetlock.Free(ctx, cli, held[0]); err != nil {
		t.Errorf("Free: %v", err)
	}
	if err := fleetlock.Free(ctx, cli, held[0]); !errors.Is(err, fleetlock.ErrSlotChanged) {
		t.Errorf("second Free of the same slot: %v, want ErrSlotChanged", err)
	}

	// By hand: the remaining holder's member ("dead") is not in the member
	// list, so it is freed without --force.
	if _, err := fleetlock.ReleaseByHand(ctx, cli, "", "", false); err != nil {
		t.Errorf("release of a removed member's slot: %v", err)
	}
	if _, err := fleetlock.ReleaseByHand(ctx, cli, "", "", false); err == nil || !strings.Contains(err.Error(), "no reboot slot is held") {
		t.Errorf("release with nothing held: %v", err)
	}

	// A holder whose member is back, healthy and caught up is freed by
	// hand (one still rebooting is refused: TestManualRelease).
	s, err := cluster.Take(ctx, cli, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("%x", s.Members[0].ID)
	if _, err := fleetlock.Take(ctx, cli, fleetlock.Holder{ID: "back", Group: "default", MemberID: self, Since: time.Now()}, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fleetlock.ReleaseByHand(ctx, cli, "other", "", false); err == nil || !strings.Contains(err.Error(), "back") {
		t.Errorf("release of an unknown id: %v, want the holders listed", err)
	}
	if h, err := fleetlock.ReleaseByHand(ctx, cli, "back", "default", false); err != nil || h.ID != "back" {
		t.Errorf("release of a holder that is back and caught up: %+v, %v", h, err)
	}
}
