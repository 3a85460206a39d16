// Package localetcd runs this node's etcd member through its runtime: it
// starts (or adopts) the member with the spec it should run, keeps it running
// (runtime.Supervise), restarts it when a job asks (a rolling change, a CA
// restart), holds it stopped when it must not run (the node is leaving, its
// data is inconsistent with its peers), and keeps the clients to it and to
// the rest of the cluster. It implements node.Clients and node.Etcd.
package localetcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

var (
	_ node.Clients = (*Member)(nil)
	_ node.Etcd    = (*Member)(nil)
)

// Timing of the member's starts and stops.
const (
	// stopGrace is added to the runtime's stop timeout for a stop call.
	stopGrace = 10 * time.Second
	// restartStart bounds the start after a planned stop (an image pull
	// included).
	restartStart = 5 * time.Minute
)

// Options are what the member needs of its node.
type Options struct {
	Config   *config.Config
	Runtime  runtime.Runtime
	Logger   *slog.Logger
	Recorder *report.Recorder
	// Bundle tracks which CA trust bundle the running etcd loaded (the CA
	// restart's input).
	Bundle *rollout.LoadedBundle
}

// Member is the local etcd member.
type Member struct {
	cfg *config.Config
	rt  runtime.Runtime
	log *slog.Logger
	rec *report.Recorder
	bnd *rollout.LoadedBundle

	specMu  sync.Mutex
	spec    etcdconf.Spec // what the member runs
	desired etcdconf.Spec // what the config asks for (rollout.ChangeJob)

	clientMu sync.Mutex
	client   *clientv3.Client // to this member
	cluster  *clientv3.Client // to the other members

	// restartMu serializes planned restarts (Restart until its end).
	restartMu   sync.Mutex
	planned     atomic.Bool
	plannedExit atomic.Value
	// inconsistent holds why etcd is held stopped after etcd's initial
	// corruption check refused this member's data ("" while it is not).
	inconsistent atomic.Value
	// supervised is closed when the current supervision returned.
	supervised chan struct{}
}

// New returns the member of a node; nothing runs until Start.
func New(o Options) *Member {
	return &Member{cfg: o.Config, rt: o.Runtime, log: o.Logger, rec: o.Recorder, bnd: o.Bundle}
}

// Runtime is the runtime the member runs in.
func (m *Member) Runtime() runtime.Runtime { return m.rt }

// Prepare sets what the member should run for desired, the config's spec
// with this pass's membership settings, and returns it. A member restarted in
// place keeps the image and settings it ran (the applied spec beside the data
// dir); the change then rolls out one member at a time (rollout.ChangeJob).
// A new member, or one in the agent's own process (stopped with the old
// agent: this start is the restart), starts with the config's settings. What
// identifies the member (name, addresses, directories, bootstrap settings)
// always comes from desired.
func (m *Member) Prepare(desired etcdconf.Spec, restartInPlace bool) etcdconf.Spec {
	run := desired
	if applied, ok := sidefile.ReadAppliedSpec(m.cfg.Node.DataDir); ok && restartInPlace && !m.rt.Capabilities().InProcess {
		run.Image = applied.Image
		run.QuotaBackendBytes = applied.QuotaBackendBytes
		run.AutoCompactionMode, run.AutoCompactionRetention = applied.AutoCompactionMode, applied.AutoCompactionRetention
		run.SnapshotCount, run.HeartbeatMs, run.ElectionMs = applied.SnapshotCount, applied.HeartbeatMs, applied.ElectionMs
		run.ExtraFlags = applied.ExtraFlags
		if change := rollout.Describe(run, desired); change != "" {
			m.log.Info("etcd config changed: starting the member as it ran; the change rolls out one member at a time", "change", change)
		}
	}
	m.specMu.Lock()
	m.desired, m.spec = desired, run
	m.specMu.Unlock()
	return run
}

// Spec implements node.Etcd: the spec the member runs now (the runtime
// supervisor reads it at every restart).
func (m *Member) Spec() etcdconf.Spec {
	m.specMu.Lock()
	defer m.specMu.Unlock()
	return m.spec
}

// Desired is the spec the config asks for (rollout.ChangeNode).
func (m *Member) Desired() etcdconf.Spec {
	m.specMu.Lock()
	defer m.specMu.Unlock()
	return m.desired
}

func (m *Member) setSpec(s etcdconf.Spec) {
	m.specMu.Lock()
	m.spec = s
	m.specMu.Unlock()
}

// FetchImage makes the prepared spec's image present when the runtime runs
// one (runtime.ImageFetcher); nothing otherwise.
func (m *Member) FetchImage(ctx context.Context) error {
	f, ok := m.rt.(runtime.ImageFetcher)
	if !ok {
		return nil
	}
	if err := f.EnsureImage(ctx, m.Spec()); err != nil {
		return fmt.Errorf("fetch the etcd image: %w", err)
	}
	return nil
}

// Start starts (or adopts) the member with the prepared spec, supervises it
// until ctx ends, and connects the client to it.
func (m *Member) Start(ctx context.Context) (runtime.Action, error) {
	spec := m.Spec()
	if err := os.MkdirAll(spec.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	m.bnd.BeforeStart()
	action, err := m.rt.Ensure(ctx, spec)
	if err != nil {
		return "", err
	}
	m.bnd.AfterEnsure(action)
	m.writeApplied(spec)
	m.log.Info("etcd runtime", "runtime", m.rt.Name(), "action", action)
	m.rec.Update(func(r *report.NodeReport) { r.ClientURL, r.PeerURL = spec.ClientURL(), spec.PeerURL() })
	supervised := make(chan struct{})
	m.supervised = supervised
	go func() {
		defer close(supervised)
		err := runtime.Supervise(ctx, m.rt, spec, runtime.SuperviseOptions{Logger: m.log, OnEvent: m.event, Hold: m.hold, Spec: m.Spec})
		if err != nil && ctx.Err() == nil {
			m.log.Error("etcd supervision ended", "err", err)
		}
	}()
	cli, err := m.Dial([]string{spec.ClientURL()})
	if err != nil {
		return action, fmt.Errorf("create etcd client: %w", err)
	}
	m.clientMu.Lock()
	m.client = cli
	m.clientMu.Unlock()
	return action, nil
}

// Supervised waits until the supervision of the last Start returned (its ctx
// ended).
func (m *Member) Supervised() {
	if m.supervised != nil {
		<-m.supervised
		m.supervised = nil
	}
}

// writeApplied records s as the spec the member runs.
func (m *Member) writeApplied(s etcdconf.Spec) {
	if err := sidefile.WriteAppliedSpec(m.cfg.Node.DataDir, s); err != nil {
		m.log.Warn("record the applied etcd spec", "file", sidefile.AppliedSpecPath(m.cfg.Node.DataDir), "err", err)
	}
	m.rec.Update(func(r *report.NodeReport) { r.EtcdImage = s.Image })
}

// hold stops etcd restarts once this node is leaving the cluster (a removed
// member must not come back) or its data was found inconsistent.
func (m *Member) hold() string {
	defer m.bnd.BeforeStart()
	if _, left := sidefile.ReadLeaveMarker(m.cfg.Node.DataDir); left {
		return "this node is leaving the cluster (" + sidefile.LeaveMarkerPath(m.cfg.Node.DataDir) + ")"
	}
	if why, _ := m.inconsistent.Load().(string); why != "" {
		return why
	}
	return ""
}

// event is what the runtime supervisor saw.
func (m *Member) event(ev runtime.Event) {
	if ev.Kind == runtime.EventEnsured {
		m.bnd.AfterEnsure(ev.Action)
	}
	switch {
	case ev.Kind == runtime.EventExited && m.planned.Load():
		m.plannedExit.Store(ev.Exit.String())
		m.log.Info("etcd stopped for a planned restart", "event", ev.String())
	case ev.Kind == runtime.EventEnsured && ev.Action == runtime.ActionAdopted,
		ev.Kind == runtime.EventStable:
		// Supervision found etcd running as expected: nothing to report.
		m.log.Debug("etcd runtime event", "event", ev.String())
	case ev.Cause() == runtime.CauseInconsistentData:
		// etcd is held stopped and the data left in place: which side is
		// wrong needs a human.
		why := "etcd's initial corruption check found this member's data inconsistent with its peers: etcd is held stopped; compare `etcd-agent status` hashes, then move " +
			m.cfg.Node.DataDir + " aside to let the node rejoin as a new member"
		m.inconsistent.Store(why)
		m.log.Error("etcd refused to start: data inconsistent with peers", "event", ev.String())
		m.rec.AddDecision(report.ActionDivergence, why)
	default:
		m.log.Warn("etcd runtime event", "event", ev.String())
		m.rec.AddDecision(report.ActionRuntime, ev.String())
	}
}

// Restart implements node.Etcd.
func (m *Member) Restart(ctx context.Context, spec etcdconf.Spec) (end func(), err error) {
	// One planned restart at a time: the CA restart and a rolling change
	// run as separate jobs (each under the membership lock, except a quota
	// raise under NOSPACE, which cannot take it).
	m.restartMu.Lock()
	m.planned.Store(true)
	end = sync.OnceFunc(func() {
		m.planned.Store(false)
		m.restartMu.Unlock()
	})
	m.plannedExit.Store("")
	m.setSpec(spec)
	if err := m.restart(ctx); err != nil {
		return end, err
	}
	m.writeApplied(spec)
	return end, nil
}

// restart stops the member and starts it again with Spec (Ensure starts a
// stopped instance: Podman removes and recreates a stopped container). The
// runtime supervisor sees the exit as planned; its next Ensure adopts the
// new instance.
func (m *Member) restart(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, m.cfg.Podman.StopTimeout.D()+stopGrace+20*time.Second)
	err := m.rt.Stop(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("stop etcd: %w", err)
	}
	m.bnd.BeforeStart()
	ectx, cancel := context.WithTimeout(ctx, restartStart)
	action, err := m.rt.Ensure(ectx, m.Spec())
	cancel()
	if err != nil {
		// The runtime supervisor keeps trying to start it.
		return fmt.Errorf("start etcd again: %w", err)
	}
	m.bnd.AfterEnsure(action)
	m.log.Info("etcd restarted", "action", action)
	return nil
}

// PlannedExit implements node.Etcd.
func (m *Member) PlannedExit() string {
	exit, _ := m.plannedExit.Load().(string)
	return exit
}

// Probe implements node.Etcd.
func (m *Member) Probe(ctx context.Context) health.Health {
	spec := m.Spec()
	return health.Probe(ctx, health.Target{Local: m.Local(), Cluster: m.Cluster, Name: spec.Name,
		ClientURL: spec.ClientURL(), Size: m.cfg.Cluster.Size, Quota: int64(m.cfg.Etcd.QuotaBackendBytes)})
}

// Local implements node.Clients.
func (m *Member) Local() *clientv3.Client {
	m.clientMu.Lock()
	defer m.clientMu.Unlock()
	return m.client
}

// Cluster implements node.Clients: a client to the other members, for what
// a learner cannot serve (member list, promotion) — the join's, or one to
// the endpoints this node last recorded. Jobs share it. It follows the
// endpoints the health probe records: under a long-running agent every
// other member may have been replaced since the client was dialled, and
// a client left on their addresses reaches nobody.
func (m *Member) Cluster() (*clientv3.Client, error) {
	m.clientMu.Lock()
	defer m.clientMu.Unlock()
	self := m.Spec().ClientURL()
	eps := slices.DeleteFunc(sidefile.ReadEndpoints(m.cfg.Node.DataDir), func(ep string) bool { return ep == self })
	if m.cluster != nil {
		if len(eps) > 0 && !slices.Equal(eps, slices.Sorted(slices.Values(m.cluster.Endpoints()))) {
			m.cluster.SetEndpoints(eps...)
		}
		return m.cluster, nil
	}
	if len(eps) == 0 {
		return nil, errors.New("no other member's client URL known to reach the cluster")
	}
	cli, err := m.Dial(eps)
	if err != nil {
		return nil, err
	}
	m.cluster = cli
	return cli, nil
}

// SetCluster hands over a client to the other members (the join's).
func (m *Member) SetCluster(cli *clientv3.Client) {
	m.clientMu.Lock()
	defer m.clientMu.Unlock()
	if m.cluster != nil && m.cluster != cli {
		_ = m.cluster.Close()
	}
	m.cluster = cli
}

// Dial implements node.Clients.
func (m *Member) Dial(eps []string) (*clientv3.Client, error) {
	return cluster.Dial(m.cfg.PKI.Dir, eps)
}

// StopAndForget stops the member (a container is removed: the next member
// gets a new container spec anyway) and closes the clients, before its data
// dir is replaced (rejoin, recovery).
func (m *Member) StopAndForget(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, m.cfg.Podman.StopTimeout.D()+stopGrace)
	defer cancel()
	if err := m.rt.Remove(sctx); err != nil {
		return err
	}
	m.closeClients()
	return nil
}

// Close closes the clients and, when stopEtcd is set or etcd lives in this
// process, stops the member: an agent stopping leaves a container running
// so the next agent adopts it without a blip.
func (m *Member) Close(stopEtcd bool) {
	m.closeClients()
	if stopEtcd || m.rt.Capabilities().InProcess {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Podman.StopTimeout.D()+stopGrace)
		defer cancel()
		if err := m.rt.Stop(ctx); err != nil {
			m.log.Warn("stop etcd", "err", err)
		}
	}
}

func (m *Member) closeClients() {
	m.clientMu.Lock()
	defer m.clientMu.Unlock()
	for _, c := range []**clientv3.Client{&m.client, &m.cluster} {
		if *c != nil {
			_ = (*c).Close()
			*c = nil
		}
	}
}
