package membership

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// The formation records a registry keeps (see Fence): a founder's start,
// written before its etcd first starts, and the cluster's formation, written
// once a founder is healthy. Static discovery keeps none (the founders ask
// each other instead, founders.go).

// RecordStarted writes this founder's started record before its etcd first
// starts with --initial-cluster-state=new; etcd does not start until it is
// written. The first-start marker goes into the data dir before it: a
// founder killed between the record and etcd's first WAL write proves with
// it that its member never ran (datadir.NeverRan) and bootstraps again
// instead of waiting forever to join a cluster nobody formed.
func (j *Job) RecordStarted(ctx context.Context, token string) error {
	book := j.formationBook()
	if book == nil {
		return nil
	}
	fs := j.firstStart(token)
	fs.At = j.n.Now().UTC()
	if err := datadir.WriteFirstStart(j.dataDir(), fs); err != nil {
		return err
	}
	s := j.self()
	self := discovery.Member{Name: s.Name, PeerURL: s.PeerURL}
	return j.retry(ctx, "recording this founder's start in discovery", func(ctx context.Context) error {
		return book.RecordStarted(ctx, self, j.n.Now())
	})
}

// forgetStartedTimeout bounds withdrawing a started record.
const forgetStartedTimeout = 10 * time.Second

// ForgetFailedStart withdraws this founder's started record after etcd
// failed to start (port in use, bad flags, …) and provably never ran: the
// runtime runs nothing and the data dir holds no WAL, so the member never
// voted. Without this, founders whose first start failed would all be
// fenced as "ran before" and wait forever for a cluster nobody formed.
// Anything uncertain keeps the record: safe, at worst the node joins later.
func (j *Job) ForgetFailedStart(ctx context.Context) {
	book := j.formationBook()
	if book == nil || ctx.Err() != nil {
		return
	}
	rt := j.n.EtcdRuntime()
	if rt == nil {
		return
	}
	if running, err := rt.Running(ctx); err != nil || running {
		return
	}
	if has, err := datadir.HasMember(j.dataDir()); err != nil || has {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, forgetStartedTimeout)
	defer cancel()
	s := j.self()
	if err := book.ForgetStarted(fctx, discovery.Member{Name: s.Name, PeerURL: s.PeerURL}); err != nil {
		j.n.Logger().Warn("withdraw the started record after a failed first start", "err", err)
		return
	}
	j.n.Recorder().AddDecision(report.ActionFence, "etcd failed to start and left no WAL: its started record in discovery is withdrawn")
	j.n.Logger().Info("withdrew the started record: etcd never ran")
}

// recordFormedWait bounds RecordFormed: a discovery that stays unreachable
// delays READY by at most this (the started records already fence the
// founders).
const recordFormedWait = 30 * time.Second

// RecordFormed writes the formation record once this member is healthy,
// before READY=1 (idempotent).
func (j *Job) RecordFormed(ctx context.Context, clusterID uint64) {
	book := j.formationBook()
	if book == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, recordFormedWait)
	defer cancel()
	f := discovery.Formed{ClusterID: fmt.Sprintf("%x", clusterID), By: j.n.Identity().Name, At: j.n.Now().UTC()}
	err := j.retry(ctx, "recording the cluster's formation in discovery", func(ctx context.Context) error {
		return book.RecordFormed(ctx, f)
	})
	if err != nil {
		j.n.Logger().Warn("record formation in discovery", "err", err)
	}
}

// firstStart is this founder's first-start marker for token (At unset).
func (j *Job) firstStart(token string) datadir.FirstStart {
	s := j.self()
	return datadir.FirstStart{Name: s.Name, PeerURL: s.PeerURL, Token: token}
}

// ForgetFirstStart removes the first-start marker once etcd wrote its WAL:
// from then on the WAL says the member ran.
func (j *Job) ForgetFirstStart() {
	if has, err := datadir.HasMember(j.dataDir()); err != nil || !has {
		return
	}
	if err := datadir.RemoveFirstStart(j.dataDir()); err != nil {
		j.n.Logger().Warn("remove the first-start marker", "err", err)
	}
}
