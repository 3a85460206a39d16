package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// membershipLockKey serializes membership changes cluster-wide.
const membershipLockKey = "/_etcd-agent/lock/membership"

// lockTTL is how long the membership lock outlives an agent that died
// holding it.
const lockTTL = 10 * time.Second

// errLockLost: the lock's session ended (lease expired, e.g. this process was
// frozen) or another holder owns the lock now. No change may follow.
var errLockLost = errors.New("membership lock lost")

// membershipLock is the cluster-wide lock every membership change holds:
// an etcd mutex on a session lease, so a holder that dies frees it within
// lockTTL.
type membershipLock struct {
	cli  *clientv3.Client
	mu   *concurrency.Mutex
	sess *concurrency.Session
}

// lockMembership waits for the lock for up to wait (0: until ctx ends). The
// session lives with ctx, not with the wait.
func lockMembership(ctx context.Context, cli *clientv3.Client, wait time.Duration) (*membershipLock, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(lockTTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("membership lock session: %w", err)
	}
	mu := concurrency.NewMutex(sess, membershipLockKey)
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if wait > 0 {
		lctx, cancel = context.WithTimeout(ctx, wait)
	}
	defer cancel()
	if err := mu.Lock(lctx); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("take membership lock: %w", err)
	}
	return &membershipLock{cli: cli, mu: mu, sess: sess}, nil
}

// check proves, right before a membership change, that the lock is still
// held: the session is alive and, read linearizably from the cluster, this
// holder's key is still there with its revision (a lease that expired while
// this process was frozen deletes it, and a waiter then owns the lock).
func (l *membershipLock) check(ctx context.Context) error {
	select {
	case <-l.sess.Done():
		return fmt.Errorf("%w: its session ended", errLockLost)
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := l.cli.Txn(ctx).If(l.mu.IsOwner()).Commit()
	if err != nil {
		return fmt.Errorf("check membership lock: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: key %s is gone", errLockLost, l.mu.Key())
	}
	return nil
}

// release unlocks and ends the session.
func (l *membershipLock) release(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.mu.Unlock(ctx); err != nil {
		log.Debug("release membership lock", "err", err)
	}
	_ = l.sess.Close()
}
