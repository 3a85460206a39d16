package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-agent/etcd-agent/agent/keys"
)

// LockTTL is how long the membership lock outlives an agent that died
// holding it.
const LockTTL = 10 * time.Second

// ErrLockLost: the lock's session ended (lease expired, e.g. this process
// was frozen) or another holder owns the lock now. No change may follow.
var ErrLockLost = errors.New("membership lock lost")

// Lock is the cluster-wide lock every membership change, rolling restart and
// defragmentation holds: an etcd mutex on a session lease, so a holder that
// dies frees it within LockTTL.
type Lock struct {
	cli  *clientv3.Client
	mu   *concurrency.Mutex
	sess *concurrency.Session
	log  *slog.Logger
}

// TakeLock waits for the lock for up to wait (0: until ctx ends). The
// session lives with ctx, not with the wait.
func TakeLock(ctx context.Context, cli *clientv3.Client, wait time.Duration, log *slog.Logger) (*Lock, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(LockTTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("membership lock session: %w", err)
	}
	mu := concurrency.NewMutex(sess, keys.MembershipLock)
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if wait > 0 {
		lctx, cancel = context.WithTimeout(ctx, wait)
	}
	defer cancel()
	if err := mu.Lock(lctx); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("take membership lock: %w", err)
	}
	return &Lock{cli: cli, mu: mu, sess: sess, log: log}, nil
}

// Check proves, right before a change, that the lock is still held: the
// session is alive and, read linearizably from the cluster, this holder's
// key is still there with its revision (a lease that expired while this
// process was frozen deletes it, and a waiter then owns the lock).
func (l *Lock) Check(ctx context.Context) error {
	select {
	case <-l.sess.Done():
		return fmt.Errorf("%w: its session ended", ErrLockLost)
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	// The Get makes the check linearizable: etcd serves a transaction with
	// no operations as a serializable read (txn.IsTxnSerializable), from
	// whatever the answering member has applied — on a member behind, a
	// stale "still the owner", or a put not yet applied. Seen: the leader
	// answered the check before it applied the lock's own put.
	own := clientv3.OpGet(l.mu.Key(), clientv3.WithCountOnly())
	resp, err := l.cli.Txn(ctx).If(l.mu.IsOwner()).Then(own).Else(own).Commit()
	if err != nil {
		return fmt.Errorf("check membership lock: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: key %s is gone", ErrLockLost, l.mu.Key())
	}
	return nil
}

// Release unlocks and ends the session.
func (l *Lock) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	if err := l.mu.Unlock(ctx); err != nil && l.log != nil {
		l.log.Debug("release membership lock", "err", err)
	}
	_ = l.sess.Close()
}

// LockHeld reports whether anyone holds (or waits for) the lock: under
// NOSPACE nobody can take it, and the maintenance coordinator acts only
// while it is free.
func LockHeld(ctx context.Context, cli *clientv3.Client) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	held, err := cli.Get(ctx, keys.MembershipLock, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("read the membership lock: %w", err)
	}
	return held.Count > 0, nil
}
