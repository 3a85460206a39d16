package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// Membership changes, each with the retries etcd's strict reconfiguration
// check needs. The caller holds the Lock and has checked it.

// unhealthyRetryFor is how long a change is retried while etcd refuses it
// as unhealthy: a member that joined, or a removal applied, a moment ago has
// connections too recent to count toward quorum yet.
const unhealthyRetryFor = time.Minute

// changeTimeout bounds one attempt of a membership change.
const changeTimeout = 15 * time.Second

// retryUnhealthy runs change, retrying while etcd refuses it with
// ErrUnhealthy; waiting is told each time it waits.
func retryUnhealthy(ctx context.Context, change func(context.Context) error, waiting func(error)) error {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Second}
	deadline := time.Now().Add(unhealthyRetryFor)
	for {
		cctx, cancel := context.WithTimeout(ctx, changeTimeout)
		err := change(cctx)
		cancel()
		if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			return err
		}
		waiting(err)
		if err := Sleep(ctx, bo.Next()); err != nil {
			return err
		}
	}
}

// AddLearner adds peerURL as a learner.
func AddLearner(ctx context.Context, cli *clientv3.Client, peerURL string, waiting func(string)) error {
	return retryUnhealthy(ctx, func(ctx context.Context) error {
		_, err := cli.MemberAddAsLearner(ctx, []string{peerURL})
		return err
	}, func(err error) {
		waiting(fmt.Sprintf("etcd refuses until every member has been connected for a while (%v); retrying", err))
	})
}

// RemoveMember removes member id.
func RemoveMember(ctx context.Context, cli *clientv3.Client, id uint64, waiting func(string)) error {
	return retryUnhealthy(ctx, func(ctx context.Context) error {
		_, err := cli.MemberRemove(ctx, id)
		return err
	}, func(err error) {
		waiting(fmt.Sprintf("etcd refuses the removal of %x until every member has been connected for a while (%v); retrying", id, err))
	})
}

// ConfirmRemoved waits, up to limit, until the other members'
// (linearizable) member list no longer holds id: the removal is committed.
func ConfirmRemoved(ctx context.Context, cli *clientv3.Client, id uint64, limit time.Duration) error {
	return PollUntil(ctx, limit, func(ctx context.Context) (bool, error) {
		list, err := cli.MemberList(ctx)
		if err != nil {
			return false, err
		}
		for _, m := range list.Members {
			if m.ID == id {
				return false, nil
			}
		}
		return true, nil
	})
}

// MoveLeader hands leadership from the member cli reaches to member to.
func MoveLeader(ctx context.Context, cli *clientv3.Client, to uint64, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	_, err := cli.MoveLeader(ctx, to)
	return err
}

// PollUntil calls check every half second (each call within 2 s) until it
// reports done, ctx ends or limit passes.
func PollUntil(ctx context.Context, limit time.Duration, check func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		done, err := check(cctx)
		cancel()
		if done {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last == nil {
				last = errors.New("timed out")
			}
			return fmt.Errorf("after %s: %w", limit, last)
		}
		if err := Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
