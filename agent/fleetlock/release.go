package fleetlock

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
)

// ReleaseByHand frees one slot for `etcd-agent fleetlock release`: the slot
// of holder id ("" picks the only holder) in group ("" any). It is refused
// while the holder is still rebooting (ManualRelease) unless force. The
// slot is freed by a transaction: a slot taken again meanwhile is left.
func ReleaseByHand(ctx context.Context, cli *clientv3.Client, id, group string, force bool) (Holder, error) {
	holders, err := Read(ctx, cli)
	if err != nil {
		return Holder{}, err
	}
	var match []Holder
	for _, h := range holders {
		if (id == "" || h.ID == id) && (group == "" || h.Group == group) {
			match = append(match, h)
		}
	}
	switch {
	case len(holders) == 0:
		return Holder{}, fmt.Errorf("no reboot slot is held")
	case len(match) == 0:
		return Holder{}, fmt.Errorf("no slot held by id %q in group %q; held: %s", id, group, describe(holders))
	case len(match) > 1:
		return Holder{}, fmt.Errorf("%d slots match; name one with --id: %s", len(match), describe(match))
	}
	h := match[0]
	s, err := cluster.Take(ctx, cli, cluster.Options{})
	if err != nil {
		return Holder{}, fmt.Errorf("survey the cluster before freeing a slot: %w", err)
	}
	if err := ManualRelease(h, Members(s), force); err != nil {
		return Holder{}, err
	}
	return h, Free(ctx, cli, h)
}

func describe(hs []Holder) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprintf("%s (%s, group %s, slot %d)", h.ID, h.Member, h.Group, h.Slot)
	}
	return strings.Join(parts, ", ")
}
