package dnsrecords

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Interval is how often the leader's agent compares the zone with the
// member list: a promoted or removed member shows in DNS within about this
// (plus the records' TTL in clients' caches). One List call a round is far
// inside Route 53's request rate limit.
const Interval = 10 * time.Second

// Timing of a round.
const (
	// callTimeout bounds each Route 53 call and the member list.
	callTimeout = 30 * time.Second
	// lockWait bounds the wait for the membership lock; a busy lock (a
	// join, a leave) means the next round.
	lockWait = 10 * time.Second
)

// problemSource is the job's problems' source in the node's report.
const problemSource = "dns-records"

// Node is what the job needs of its node: the local client, the lock, the
// local member's probe (whether it leads).
type Node interface {
	node.Node
	node.Clients
	Probe(ctx context.Context) health.Health
}

// Job keeps the client DNS records in step with the membership. Only the
// leader's agent writes, and only under the membership lock on a member list
// read under it: a join, a removal or a leave (which withdraws its member's
// records under the same lock) never interleaves with a write.
type Job struct {
	n        Node
	newStore func(ctx context.Context) (Store, error)

	mu    sync.Mutex
	store Store
	shown Shared // the outcome in the node's report
}

// NewJob returns the job of n; newStore builds the store on first use (it
// may read credentials).
func NewJob(n Node, newStore func(ctx context.Context) (Store, error)) *Job {
	return &Job{n: n, newStore: newStore}
}

// Run is one round. On the leader's agent: plan against the zone and,
// when something changed, write the batch under the lock; the outcome is
// kept in the cluster (Shared). On the others: show that outcome. A failure
// is shown in status with what to fix, and retried next round; Run returns
// nil.
func (j *Job) Run(ctx context.Context) error {
	h := j.n.Probe(ctx)
	cli := j.n.Local()
	if !h.Ready || cli == nil {
		return nil
	}
	if !h.Leader {
		j.follow(ctx, cli)
		return nil
	}
	err := j.sync(ctx, cli)
	if err != nil && ctx.Err() != nil {
		return nil // shutting down
	}
	if err != nil {
		j.n.Logger().Warn("client DNS records not in step", "err", err)
	}
	shared := sharedOf(j.n.Identity().Name, err, j.n.Now())
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if werr := writeShared(cctx, cli, shared); werr != nil {
		j.n.Logger().Debug("share the client DNS records' outcome", "err", werr)
	}
	j.show(shared)
	return nil
}

// follow shows the writer's latest outcome in this node's report.
func (j *Job) follow(ctx context.Context, cli *clientv3.Client) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	shared, err := readShared(cctx, cli)
	if err != nil {
		j.n.Logger().Debug("read the client DNS records' outcome", "err", err)
		return
	}
	j.show(shared)
}

// sync makes the zone match the member list.
func (j *Job) sync(ctx context.Context, cli *clientv3.Client) error {
	store, err := j.storeFor(ctx)
	if err != nil {
		return err
	}
	zone := ZoneOf(j.n.Config().Clients.Route53)
	changes, err := j.plan(ctx, cli, store, zone)
	if err != nil || len(changes) == 0 {
		return err
	}
	// Something to change: again on a fresh survey, under the lock.
	lock, err := cluster.TakeLock(ctx, cli, lockWait, j.n.Logger())
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil // a membership change holds it: next round
		}
		return err
	}
	defer lock.Release()
	if changes, err = j.plan(ctx, cli, store, zone); err != nil || len(changes) == 0 {
		return err
	}
	if err := lock.Check(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := store.Apply(cctx, "etcd-agent: in step with the member list", changes); err != nil {
		return err
	}
	j.decided(changes, "in step with the member list")
	return nil
}

// plan is the batch the member list calls for now.
func (j *Job) plan(ctx context.Context, cli *clientv3.Client, store Store, zone Zone) ([]Change, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	list, err := cli.MemberList(cctx)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	var members []Member
	for _, m := range list.Members {
		members = append(members, Member{Name: m.Name, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	current, err := store.List(cctx)
	if err != nil {
		return nil, err
	}
	desired, skipped := zone.Desired(members)
	if len(skipped) > 0 {
		j.n.Logger().Debug("members without a client URL left out of DNS", "members", skipped)
	}
	return zone.Plan(current, desired), nil
}

// Withdraw takes self's records out of the zone before it leaves; the
// caller holds the membership lock (`leave`). Nothing to withdraw is fine.
func (j *Job) Withdraw(ctx context.Context, self Member) ([]Change, error) {
	store, err := j.storeFor(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	current, err := store.List(cctx)
	if err != nil {
		return nil, err
	}
	changes := ZoneOf(j.n.Config().Clients.Route53).Withdraw(current, self)
	if len(changes) == 0 {
		return nil, nil
	}
	if err := store.Apply(cctx, "etcd-agent: "+self.Name+" leaves", changes); err != nil {
		return nil, err
	}
	j.decided(changes, self.Name+" leaves")
	return changes, nil
}

func (j *Job) storeFor(ctx context.Context) (Store, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.store == nil {
		s, err := j.newStore(ctx)
		if err != nil {
			return nil, &Error{Kind: problem.DNSRecordsFailed, Op: "set up the Route 53 client", Err: err}
		}
		j.store = s
	}
	return j.store, nil
}

func (j *Job) decided(changes []Change, why string) {
	var lines []string
	for _, c := range changes {
		lines = append(lines, c.String())
	}
	j.n.Logger().Info("client DNS records changed", "why", why, "changes", lines)
	j.n.Recorder().AddDecision(report.ActionDNSRecords, why+": "+strings.Join(lines, "; "))
	j.n.Publish()
}

// show puts the outcome in the node's report (no problem when in step),
// publishing only when it changed.
func (j *Job) show(s Shared) {
	var ps []problem.Problem
	if p, ok := s.Problem(); ok {
		ps = []problem.Problem{p}
	}
	j.mu.Lock()
	same := s.Code == j.shown.Code && s.Text == j.shown.Text && s.Writer == j.shown.Writer
	j.shown = s
	j.mu.Unlock()
	if same {
		return
	}
	j.n.Recorder().SetProblems(problemSource, ps)
	j.n.Publish()
}

// problemOf is err as a problem (false when nil).
func problemOf(err error) (problem.Problem, bool) {
	var e *Error
	switch {
	case err == nil:
		return problem.Problem{}, false
	case errors.As(err, &e):
		return e.Problem(), true
	}
	return problem.DNSRecordsFailed.New("", err.Error()), true
}
