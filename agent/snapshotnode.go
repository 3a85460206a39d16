package agent

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// snapshotBeforeChange takes a snapshot before this agent changes the
// membership (join, leave, abandoned learner); see
// (*schedule.Job).BeforeChange. It never blocks the change.
func (a *Agent) snapshotBeforeChange(ctx context.Context, cli *clientv3.Client, change string) {
	a.backups.BeforeChange(ctx, cli, change)
}
