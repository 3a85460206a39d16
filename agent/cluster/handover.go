package cluster

import (
	"context"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/keys"
)

// Handovers lists the members that offer their seat (keys.HandoverPrefix):
// voters EC2 is terminating, waiting for a replacement before they leave.
func Handovers(ctx context.Context, cli *clientv3.Client) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, keys.HandoverPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, kv := range resp.Kvs {
		if id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), keys.HandoverPrefix), 16, 64); err == nil {
			out = append(out, id)
		}
	}
	return out, nil
}

// OfferSeat writes (or renews) member id's seat offer on a lease of ttl:
// lease is the one of the previous offer (0: none), and the one in use is
// returned. An offer not renewed within ttl is gone.
func OfferSeat(ctx context.Context, cli *clientv3.Client, id uint64, lease clientv3.LeaseID, ttl time.Duration, note string) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	if lease != 0 {
		if _, err := cli.KeepAliveOnce(ctx, lease); err != nil {
			lease = 0 // expired or unknown: a new one
		}
	}
	if lease == 0 {
		g, err := cli.Grant(ctx, int64(ttl.Seconds()))
		if err != nil {
			return 0, err
		}
		lease = g.ID
	}
	_, err := cli.Put(ctx, keys.Handover(id), note, clientv3.WithLease(lease))
	return lease, err
}

// WithdrawSeat deletes member id's seat offer.
func WithdrawSeat(ctx context.Context, cli *clientv3.Client, id uint64) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	_, err := cli.Delete(ctx, keys.Handover(id))
	return err
}
