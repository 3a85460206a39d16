package cluster

import (
	"context"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/keys"
)

// A heartbeat is the time an agent last saw its member healthy. It can prove
// a member alive; it never makes a member count as down for longer than the
// reader itself has seen it down.

// Heartbeats reads every agent's last healthy time; an error only means less
// is known.
func Heartbeats(ctx context.Context, cli *clientv3.Client) (map[uint64]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, keys.HeartbeatPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[uint64]time.Time{}
	for _, kv := range resp.Kvs {
		id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), keys.HeartbeatPrefix), 16, 64)
		if err != nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, string(kv.Value)); err == nil {
			out[id] = t
		}
	}
	return out, nil
}

// Beat records that member id is healthy at now.
func Beat(ctx context.Context, cli *clientv3.Client, id uint64, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	_, err := cli.Put(ctx, keys.Heartbeat(id), now.UTC().Format(time.RFC3339Nano))
	return err
}

// ForgetHeartbeat deletes a removed member's heartbeat.
func ForgetHeartbeat(ctx context.Context, cli *clientv3.Client, id uint64) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	_, err := cli.Delete(ctx, keys.Heartbeat(id))
	return err
}
