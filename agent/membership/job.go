package membership

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// The membership job is how a node enters, stays in and leaves the cluster:
// the I/O around the planners above (Decide, Fence, PlanJoin, LeaveCheck,
// TrackOutages), which stay pure.
//
//	Enter              the membership stage: restart, bootstrap (behind the
//	                   formation fence) or join (under the membership lock)
//	RecordStarted,     a founder's start as the registry records it
//	ForgetFailedStart
//	Promote,           the ready stage of a learner
//	AbandonLearner
//	RecordFormed,      once the member is ready after a change
//	PublishEndpoints
//	Check, Watch       whether the data still belongs to the cluster
//	Rejoin             move the data aside after a RejoinNeeded
//	Leave              `etcd-agent leave`

// Node is what the membership job needs of its node.
type Node interface {
	node.Node
	node.Clients
	Snapshotter
	Superseded
	ClientRecords
	// Discovery is the node's discovery source (the configured one, built
	// once).
	Discovery() (discovery.Source, error)
	// EtcdRuntime runs the local etcd; nil when this process has none
	// (`leave` beside a running agent whose embedded etcd stops by itself
	// once removed).
	EtcdRuntime() runtime.Runtime
	// StopEtcd stops the local etcd (a container is removed: the next
	// member gets a new one) and closes the clients to it, before its data
	// dir is moved aside.
	StopEtcd(ctx context.Context) error
}

// Snapshotter takes the snapshot before a membership change (the backup
// job). It never blocks the change: a failure is logged and shown, and the
// change goes on.
type Snapshotter interface {
	SnapshotBeforeChange(ctx context.Context, cli *clientv3.Client, change string)
}

// ClientRecords withdraws this member's client DNS records (package
// dnsrecords) before it leaves, so clients stop being sent to it; the
// caller holds the membership lock. It says what it did ("" when the
// agents keep no client records).
type ClientRecords interface {
	WithdrawClientRecords(ctx context.Context, name, clientURL string) (string, error)
}

// Superseded finds the recovery record saying that a recovery replaced the
// cluster this node's data belongs to, and decides whether that cluster is
// gone (the recovery job's concern): only then is a RejoinNeeded returned.
type Superseded interface {
	// SupersededBeforeRestart is the check before a member restarts in
	// place: the registry when it answers, else the clusters at the
	// addresses this node knows. It holds the member (blocks) while the
	// replaced cluster may still serve or come back.
	SupersededBeforeRestart(ctx context.Context) *RejoinNeeded
	// SupersededByRecovery asks the registry (within timeout), for a member
	// unhealthy since unhealthySince; answered is false when there is no
	// registry or it did not answer.
	SupersededByRecovery(ctx context.Context, timeout time.Duration, unhealthySince time.Time) (r *RejoinNeeded, answered bool)
	// SupersededByAnswer asks the cluster answering through cli (another
	// cluster than dataClusterID) whether it replaced it, for a member
	// unhealthy since unhealthySince.
	SupersededByAnswer(ctx context.Context, cli *clientv3.Client, dataClusterID uint64, unhealthySince time.Time) *RejoinNeeded
}

// RejoinNeeded ends one pass of the node's lifecycle: the data dir is moved
// aside (Rejoin) and the node goes through membership again.
type RejoinNeeded struct {
	Reason string
}

func (r *RejoinNeeded) Error() string { return "rejoin as a new member: " + r.Reason }

// HookStep is a step of a join where Options.Hook is called (tests).
type HookStep string

// Hook steps.
const (
	// HookAdded: after the member add, before etcd starts.
	HookAdded HookStep = "added"
	// HookPromote: before each promotion attempt.
	HookPromote HookStep = "promote"
	// HookSnapshotted: after the snapshot before a membership change (a
	// join's removal or add, a learner giving up), before the cluster is
	// surveyed again to plan the change anew. Tests pause here to change
	// the cluster while the snapshot "runs".
	HookSnapshotted HookStep = "snapshotted"

	// The steps of a founder's first start (bootstrap), where tests stop
	// the agent as a kill would.
	//
	// HookRecording: the image is present, before the started record.
	HookRecording HookStep = "recording"
	// HookRecorded: after the started record, before etcd starts.
	HookRecorded HookStep = "recorded"
	// HookEtcdStarted: etcd started (its WAL written), before READY.
	HookEtcdStarted HookStep = "etcd-started"
)

// ErrSkipPromotion, returned by Options.Hook at HookPromote, skips that
// promotion attempt (tests: a learner that never catches up).
var ErrSkipPromotion = errors.New("promotion skipped by the join hook")

// DefaultLearnerCatchUpTimeout bounds a learner's catch-up: a learner still
// not promoted after it removes itself and the join starts over.
const DefaultLearnerCatchUpTimeout = 15 * time.Minute

// Options are the job's settings.
type Options struct {
	// Hook, when set, is called at the steps of a join. An error aborts
	// there, as a crash would (tests).
	Hook func(HookStep) error
	// LearnerCatchUpTimeout is how long a learner may catch up before
	// AbandonLearner is due (zero: DefaultLearnerCatchUpTimeout).
	LearnerCatchUpTimeout time.Duration
}

// Job is the membership job of one node.
type Job struct {
	n    Node
	opts Options
}

// NewJob returns the membership job of n.
func NewJob(n Node, opts Options) *Job {
	if opts.LearnerCatchUpTimeout <= 0 {
		opts.LearnerCatchUpTimeout = DefaultLearnerCatchUpTimeout
	}
	return &Job{n: n, opts: opts}
}

func (j *Job) hook(step HookStep) error {
	if j.opts.Hook == nil {
		return nil
	}
	return j.opts.Hook(step)
}

// self is this node as a member: its name and peer URL.
func (j *Job) self() Member {
	id := j.n.Identity()
	return Member{Name: id.Name, PeerURL: j.n.Config().MemberSpec(id.Name, id.PrivateIP).PeerURL()}
}

// selfClientURL is this node's client URL.
func (j *Job) selfClientURL() string {
	id := j.n.Identity()
	return j.n.Config().MemberSpec(id.Name, id.PrivateIP).ClientURL()
}

func (j *Job) dataDir() string { return j.n.Config().Node.DataDir }

// retry runs step until it succeeds or ctx ends (node.Retry).
func (j *Job) retry(ctx context.Context, what string, step func(context.Context) error) error {
	return node.Retry(ctx, j.n, what, step)
}
