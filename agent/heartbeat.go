package agent

import (
	"context"
	"strconv"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/health"
)

// heartbeatPrefix + member ID (hex) holds the time its agent last saw its
// member healthy. A heartbeat can prove a member alive; it never makes a
// member count as down for longer than this node itself has seen it down.
const heartbeatPrefix = "/_etcd-agent/heartbeat/"

func heartbeatKey(id uint64) string { return heartbeatPrefix + strconv.FormatUint(id, 16) }

// heartbeat records that this node's member is healthy now.
func (a *Agent) heartbeat(ctx context.Context, id uint64) {
	ctx, cancel := context.WithTimeout(ctx, health.Timeout)
	defer cancel()
	if _, err := a.client.Put(ctx, heartbeatKey(id), a.now().UTC().Format(time.RFC3339Nano)); err != nil {
		a.log.Debug("heartbeat", "err", err)
	}
}
