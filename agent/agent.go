// Package agent runs one node's lifecycle: identity, certificates,
// membership, etcd runtime, readiness, supervision. The stages run in the
// order listed in (*Agent).stages; each is safe to rerun, so a crashed or
// restarted agent simply starts from the top and finds its earlier work done
// (certificates reused, the discovery registration found again, the running
// container adopted).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/backup/schedule"
	"github.com/etcd-agent/etcd-agent/agent/certs"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/maintenance"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Notifier is what the agent tells its supervisor (systemd's sd_notify).
type Notifier interface {
	Ready(status string) error
	Status(status string) error
	Watchdog() error
	Stopping(status string) error
}

// Options are the agent's dependencies. Config and Identity are required,
// and Runtime for Run; the rest have defaults.
type Options struct {
	Config   *config.Config
	Identity identity.Source
	Runtime  runtime.Runtime
	// Discovery overrides the source built from Config (tests).
	Discovery discovery.Source
	Notifier  Notifier
	Logger    *slog.Logger
	Version   string
	// WatchdogInterval is how often to send WATCHDOG=1; 0 disables.
	WatchdogInterval time.Duration
	// StopEtcdOnExit stops the etcd member when the agent exits. Embedded
	// etcd always stops with the process; a container is left running by
	// default so agent restarts and upgrades adopt it without a blip.
	StopEtcdOnExit bool
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// JoinHook, when set, is called at the steps of a join
	// (membership.HookAdded: after the member add, before etcd starts;
	// membership.HookPromote: before each promotion attempt). An error
	// aborts Run there, as a crash would (tests).
	JoinHook func(step membership.HookStep) error
	// CertCheckInterval is how often certificates and the CA bundle are
	// checked. Zero: a quarter of pki.renewBefore, between 5s and 1h
	// (tests shorten it).
	CertCheckInterval time.Duration
	// ChangeReadyTimeout bounds the wait for a member restarted with a
	// changed etcd image or setting to be healthy and caught up; past it the
	// change is rolled back and not tried on any member. Zero: 2 minutes.
	ChangeReadyTimeout time.Duration
	// LearnerCatchUpTimeout bounds a learner's catch-up before it removes
	// itself and joins again. Zero: 15 minutes.
	LearnerCatchUpTimeout time.Duration
}

// Agent is one node's agent. Create it with New and call Run once.
type Agent struct {
	opts Options
	cfg  *config.Config
	log  *slog.Logger
	rec  *report.Recorder
	now  func() time.Time

	// Filled in by the stages, in order.
	id       identity.Identity
	certs    *certs.Job
	decision membership.Decision
	spec     etcdconf.Spec // what the member runs; etcdSpec() off the main goroutine
	specMu   sync.Mutex
	desired  etcdconf.Spec // what the config asks for (rolling changes, etcdchange.go)
	client   *clientv3.Client
	ready    chan struct{}
	discMu   sync.Mutex
	disc     discovery.Source // discovery() builds it once

	// A client to the other members, for what a learner cannot serve
	// (member lists, promotion); clusterClient makes it.
	clusterMu sync.Mutex
	cluster   *clientv3.Client
	// etcdSupervised is closed when this pass's etcd supervision returned.
	etcdSupervised chan struct{}
	readyOnce      sync.Once
	// inconsistent holds why etcd is held stopped after etcd's initial
	// corruption check refused this member's data ("" while it is not).
	inconsistent atomic.Value
	// bundle is the CA trust bundle the running etcd loaded (CA rotation).
	bundle *rollout.LoadedBundle
	// planned is set while a job restarts etcd (plannedRestart).
	planned atomic.Bool
	// changes rolls config changes of etcd out; caRestart restarts etcd
	// for a changed trust bundle (package rollout).
	changes   *rollout.ChangeJob
	caRestart *rollout.CAJob
	// restartMu serializes planned restarts (Restart until its end).
	restartMu sync.Mutex
	// plannedExit is how etcd last exited during a planned restart.
	plannedExit atomic.Value
	// maint is the defragmentation and NOSPACE recovery job.
	maint *maintenance.Job
	// recovery is the disaster recovery job (agent/recovery).
	recovery *recovery.Job
	// backups is the snapshot job (scheduled, and before membership changes).
	backups *schedule.Job
	// divergence is the leader's HashKV comparison.
	divergence *hashcheck.Job
	// members is the membership job: enter, promote, check, rejoin, leave.
	members *membership.Job
}

// New checks the options and returns an agent ready to Run.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil || opts.Identity == nil {
		return nil, errors.New("agent: Config and Identity are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Notifier == nil {
		opts.Notifier = nopNotifier{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LearnerCatchUpTimeout <= 0 {
		opts.LearnerCatchUpTimeout = membership.DefaultLearnerCatchUpTimeout
	}
	a := &Agent{opts: opts, cfg: opts.Config, log: opts.Logger, now: opts.Now, ready: make(chan struct{})}
	a.recovery = recovery.NewJob(recoveryNode{a})
	a.members = membership.NewJob(membershipNode{a}, membership.Options{Hook: opts.JoinHook, LearnerCatchUpTimeout: opts.LearnerCatchUpTimeout})
	a.rec = report.NewRecorder(report.NodeReport{
		PID:     os.Getpid(),
		Version: opts.Version,
		CertDir: opts.Config.PKI.Dir,
	}, opts.Now)
	a.backups = schedule.NewJob(a)
	a.divergence = hashcheck.NewJob(a)
	a.maint = maintenance.NewJob(a)
	a.bundle = rollout.NewLoadedBundle(filepath.Join(opts.Config.PKI.Dir, pki.CACertFile))
	a.changes = rollout.NewChangeJob(a, opts.ChangeReadyTimeout)
	a.caRestart = rollout.NewCAJob(a, a.bundle)
	// The CA restart looks at the bundle etcd loaded after each renewal.
	a.certs = certs.NewJob(a, func(ctx context.Context) { _ = a.caRestart.Run(ctx) })
	return a, nil
}

// Ready is closed once the local member is healthy, a voter and caught up.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Report returns the agent's current published state.
func (a *Agent) Report() report.NodeReport { return a.rec.Snapshot() }

func (a *Agent) resolveIdentity(ctx context.Context) error {
	a.setPhase(report.PhaseIdentity, "reading node identity from "+a.cfg.Node.Identity)
	id, err := a.opts.Identity.Identity(ctx)
	if err != nil {
		return err
	}
	a.id = id
	a.rec.Update(func(r *report.NodeReport) {
		r.Name, r.PrivateIP, r.Hostname = id.Name, id.PrivateIP.String(), id.Hostname
		r.InstanceID, r.AvailabilityZone = id.InstanceID, id.AvailabilityZone
		if id.PublicIP.IsValid() {
			r.PublicIP = id.PublicIP.String()
		}
	})
	a.log.Info("node identity", "name", id.Name, "ip", id.PrivateIP, "source", id.Source,
		"instance", id.InstanceID, "az", id.AvailabilityZone)
	return nil
}

// decideMembership is the membership stage: the membership job decides how
// the member starts (and a join hands over its client to the cluster).
func (a *Agent) decideMembership(ctx context.Context) error {
	// Connect to the container runtime while discovery waits for peers.
	go func() {
		if err := a.opts.Runtime.Prepare(ctx); err != nil {
			a.log.Debug("prepare etcd runtime", "err", err)
		}
	}()
	d, cli, err := a.members.Enter(ctx)
	if err != nil {
		return err
	}
	a.decision = d
	if cli != nil {
		a.cluster = cli
	}
	return nil
}

// specBase is the etcd configuration that does not depend on membership:
// the same mapping `config check` validates.
func (a *Agent) specBase() etcdconf.Spec {
	s := a.cfg.MemberSpec(a.id.Name, a.id.PrivateIP)
	if a.opts.Runtime != nil && a.opts.Runtime.Capabilities().RunsImage {
		s.Image = a.cfg.Etcd.Image // a changed image rolls out like a setting
	}
	return s
}

func (a *Agent) startEtcd(ctx context.Context) error {
	spec := a.specBase()
	spec.InitialCluster = a.decision.InitialCluster
	spec.InitialClusterState = a.decision.InitialClusterState
	spec.InitialClusterToken = a.decision.Token
	if err := spec.Validate(); err != nil {
		return &config.Error{Problems: []config.Problem{{Field: "etcd", Problem: err.Error(), Fix: "correct etcd.extraFlags or the ports"}}}
	}
	a.specMu.Lock()
	a.desired = spec
	a.specMu.Unlock()
	spec = a.specToRun(spec)
	a.setEtcdSpec(spec)
	if err := a.waitRuntime(ctx); err != nil {
		return err
	}
	if a.decision.Path == membership.Bootstrap {
		// Before its etcd first starts, a founder records that it did: a
		// blank node finding this record never reuses the member's identity.
		if err := a.members.RecordStarted(ctx); err != nil {
			return err
		}
	}
	a.setPhase(report.PhaseStartingEtcd, "starting etcd ("+a.opts.Runtime.Name()+")")
	if err := os.MkdirAll(spec.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	a.beforeEtcdStart()
	action, err := a.opts.Runtime.Ensure(ctx, spec)
	if err != nil {
		if a.decision.Path == membership.Bootstrap {
			a.members.ForgetFailedStart(ctx)
		}
		return err
	}
	a.afterEtcdEnsure(action)
	a.writeAppliedSpec(spec)
	a.log.Info("etcd runtime", "runtime", a.opts.Runtime.Name(), "action", action)
	a.rec.Update(func(r *report.NodeReport) { r.ClientURL, r.PeerURL = spec.ClientURL(), spec.PeerURL() })
	supervised := make(chan struct{})
	a.etcdSupervised = supervised
	go func() {
		defer close(supervised)
		err := runtime.Supervise(ctx, a.opts.Runtime, spec, runtime.SuperviseOptions{Logger: a.log, OnEvent: a.runtimeEvent, Hold: a.holdEtcd, Spec: a.etcdSpec})
		if err != nil && ctx.Err() == nil {
			a.log.Error("etcd supervision ended", "err", err)
		}
	}()
	// Reloading: a renewed client certificate or trust bundle is used by
	// the next connection of this long-lived client.
	tlsCfg, err := pki.ReloadingClientTLS(a.cfg.PKI.Dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return err
	}
	a.client, err = clientv3.New(clientv3.Config{
		Endpoints:   []string{spec.ClientURL()},
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("create etcd client: %w", err)
	}
	return nil
}

// holdEtcd stops etcd restarts once this node is leaving the cluster: a
// removed member must not come back.
func (a *Agent) holdEtcd() string {
	defer a.beforeEtcdStart()
	if _, left := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir); left {
		return "this node is leaving the cluster (" + sidefile.LeaveMarkerPath(a.cfg.Node.DataDir) + ")"
	}
	if why, _ := a.inconsistent.Load().(string); why != "" {
		return why
	}
	return ""
}

func (a *Agent) runtimeEvent(ev runtime.Event) {
	if ev.Kind == runtime.EventEnsured {
		a.afterEtcdEnsure(ev.Action)
	}
	switch {
	case ev.Kind == runtime.EventExited && a.plannedRestart():
		a.plannedExit.Store(ev.Exit.String())
		a.log.Info("etcd stopped for a planned restart", "event", ev.String())
	case ev.Kind == runtime.EventEnsured && ev.Action == runtime.ActionAdopted,
		ev.Kind == runtime.EventStable:
		// Supervision found etcd running as expected: nothing to report.
		a.log.Debug("etcd runtime event", "event", ev.String())
	case ev.Cause() == runtime.CauseInconsistentData:
		// etcd is held stopped and the data left in place: which side is
		// wrong needs a human.
		why := "etcd's initial corruption check found this member's data inconsistent with its peers: etcd is held stopped; compare `etcd-agent status` hashes, then move " +
			a.cfg.Node.DataDir + " aside to let the node rejoin as a new member"
		a.inconsistent.Store(why)
		a.log.Error("etcd refused to start: data inconsistent with peers", "event", ev.String())
		a.rec.AddDecision(report.ActionDivergence, why)
	default:
		a.log.Warn("etcd runtime event", "event", ev.String())
		a.rec.AddDecision(report.ActionRuntime, ev.String())
	}
}

func (a *Agent) setPhase(p report.Phase, msg string) {
	a.rec.SetPhase(p, msg)
	if err := a.opts.Notifier.Status(msg); err != nil {
		a.log.Debug("sd_notify status", "err", err)
	}
	a.flush()
}

func (a *Agent) flush() {
	if err := a.rec.Flush(a.cfg.Agent.StatusFile); err != nil {
		a.log.Warn("publish status", "file", a.cfg.Agent.StatusFile, "err", err)
	}
}

func (a *Agent) shutdown(runErr error) {
	msg := "stopping"
	if runErr != nil {
		msg = "stopping after error: " + runErr.Error()
		a.rec.SetError(runErr)
	}
	_ = a.opts.Notifier.Stopping(msg)
	a.rec.SetPhase(report.PhaseStopping, msg)
	a.flush()
	if a.client != nil {
		_ = a.client.Close()
	}
	if a.cluster != nil {
		_ = a.cluster.Close()
	}
	if a.opts.StopEtcdOnExit || a.opts.Runtime.Capabilities().InProcess {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Podman.StopTimeout.D()+10*time.Second)
		defer cancel()
		if err := a.opts.Runtime.Stop(ctx); err != nil {
			a.log.Warn("stop etcd", "err", err)
		}
	}
	a.rec.SetPhase(report.PhaseStopped, msg)
	a.flush()
}

// LeftError is returned by Run on a node that has left the cluster.
type LeftError struct {
	Marker string
	Detail string
}

func (e *LeftError) Error() string {
	return fmt.Sprintf("this node left the cluster (%s): it will not start etcd or join again; delete %s to let it join as a new member",
		strings.TrimSpace(e.Detail), e.Marker)
}

// leftError is a LeftError when this node left, or is leaving, the cluster
// (nil otherwise).
func (a *Agent) leftError() error {
	m, ok := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir)
	if !ok {
		return nil
	}
	return &LeftError{Marker: sidefile.LeaveMarkerPath(a.cfg.Node.DataDir), Detail: m.String()}
}

// Leave removes this node's member from the cluster (scale-down,
// decommission) and wipes its data only after the removal is committed
// (membership.Job.Leave); progress is told each step. Options.Runtime stops
// the local etcd; nil when a running agent owns it (it stops by itself on
// removal). An interrupted Leave can be run again: it finishes what is left.
func (a *Agent) Leave(ctx context.Context, progress func(string)) error {
	if err := a.resolveIdentity(ctx); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return a.members.Leave(ctx, progress)
}

type nopNotifier struct{}

func (nopNotifier) Ready(string) error    { return nil }
func (nopNotifier) Status(string) error   { return nil }
func (nopNotifier) Watchdog() error       { return nil }
func (nopNotifier) Stopping(string) error { return nil }

// probe asks the local member whether it is healthy, a voter and caught up.
func (a *Agent) probe(ctx context.Context) health.Health {
	spec := a.etcdSpec()
	return health.Probe(ctx, health.Target{Local: a.client, Cluster: a.clusterClient, Name: spec.Name,
		ClientURL: spec.ClientURL(), Size: a.cfg.Cluster.Size, Quota: int64(a.cfg.Etcd.QuotaBackendBytes)})
}
