package fleetlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/keys"
)

// The semaphore lives in the cluster: slot k of a group is the key
// keys.FleetLockSlot(group, k), present while held. Taking a slot is a
// put-if-absent (create revision 0) and freeing it a delete-if-unchanged
// (mod revision as read), each one transaction: two agents racing for a
// slot, or freeing one, never both succeed, and no read-then-write gap
// exists.

// ErrSlotChanged: the slot was taken or changed since it was read.
var ErrSlotChanged = errors.New("the slot changed since it was read")

// Read returns every group's holders, by group then slot number (a
// linearizable read).
func Read(ctx context.Context, cli *clientv3.Client) ([]Holder, error) {
	ctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, keys.FleetLockPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the reboot slots: %w", err)
	}
	out := make([]Holder, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var h Holder
		key := string(kv.Key)
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			// Still a held slot: shown and freeable by hand.
			h = Holder{ID: "(unreadable: " + err.Error() + ")"}
		}
		group, slot, _ := strings.Cut(strings.TrimPrefix(key, keys.FleetLockPrefix), "/")
		h.Group = group
		h.Slot, _ = strconv.Atoi(slot)
		h.Key, h.ModRevision = key, kv.ModRevision
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Holder) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		return a.Slot - b.Slot
	})
	return out, nil
}

// Take puts h into the first free slot of its group (slots slots), by a
// transaction that succeeds only while that slot is still free; it returns
// h as stored. ErrSlotChanged when every slot was taken meanwhile.
func Take(ctx context.Context, cli *clientv3.Client, h Holder, slots int, held []Holder) (Holder, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return Holder{}, err
	}
	for k := range slots {
		if slices.ContainsFunc(held, func(o Holder) bool { return o.Group == h.Group && o.Slot == k }) {
			continue
		}
		key := keys.FleetLockSlot(h.Group, k)
		tctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
		resp, err := cli.Txn(tctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(b))).Commit()
		cancel()
		if err != nil {
			return Holder{}, fmt.Errorf("take reboot slot %s: %w", key, err)
		}
		if resp.Succeeded {
			h.Slot, h.Key, h.ModRevision = k, key, resp.Header.Revision
			return h, nil
		}
	}
	return Holder{}, fmt.Errorf("group %q: %w", h.Group, ErrSlotChanged)
}

// Free deletes h's slot if it is unchanged since it was read.
// ErrSlotChanged when it was freed or taken again meanwhile.
func Free(ctx context.Context, cli *clientv3.Client, h Holder) error {
	ctx, cancel := context.WithTimeout(ctx, cluster.CallTimeout)
	defer cancel()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(h.Key), "=", h.ModRevision)).Then(clientv3.OpDelete(h.Key)).Commit()
	if err != nil {
		return fmt.Errorf("free reboot slot %s: %w", h.Key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("free reboot slot %s: %w", h.Key, ErrSlotChanged)
	}
	return nil
}
