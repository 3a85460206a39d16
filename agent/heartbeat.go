package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/health"
)

// heartbeatPrefix + member ID (hex) holds the time its agent last saw its
// member healthy. A heartbeat can prove a member alive; it never makes a
// member count as down for longer than this node itself has seen it down.
const heartbeatPrefix = "/_etcd-agent/heartbeat/"

// heartbeats reads every agent's last healthy time; a failure only means
// less is known.
func (a *Agent) heartbeats(ctx context.Context, cli *clientv3.Client) map[uint64]time.Time {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, heartbeatPrefix, clientv3.WithPrefix())
	if err != nil {
		a.log.Debug("read heartbeats", "err", err)
		return nil
	}
	out := map[uint64]time.Time{}
	for _, kv := range resp.Kvs {
		id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), heartbeatPrefix), 16, 64)
		if err != nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, string(kv.Value)); err == nil {
			out[id] = t
		}
	}
	return out
}

func heartbeatKey(id uint64) string { return heartbeatPrefix + strconv.FormatUint(id, 16) }

// heartbeat records that this node's member is healthy now.
func (a *Agent) heartbeat(ctx context.Context, id uint64) {
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	if _, err := a.client.Put(ctx, heartbeatKey(id), a.now().UTC().Format(time.RFC3339Nano)); err != nil {
		a.log.Debug("heartbeat", "err", err)
	}
}

// forgetHeartbeat deletes a removed member's heartbeat.
func (a *Agent) forgetHeartbeat(ctx context.Context, cli *clientv3.Client, id uint64) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, heartbeatKey(id)); err != nil {
		a.log.Debug("delete heartbeat", "id", fmt.Sprintf("%x", id), "err", err)
	}
}
