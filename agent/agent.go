// Package agent is the thin orchestrator of one node: it runs the lifecycle
// stages (identity, certificates, membership, etcd, ready) listed as data in
// lifecycle.go, starts the job table beside them, and wires the jobs — each
// in its own package beside its planner — to the node through narrow
// interfaces. Every stage is safe to rerun, so a crashed or restarted agent
// simply starts from the top and finds its earlier work done (certificates
// reused, the discovery registration found again, the running container
// adopted).
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
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup/schedule"
	"github.com/etcd-agent/etcd-agent/agent/certs"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/dnsrecords"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/fleet"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/localetcd"
	"github.com/etcd-agent/etcd-agent/agent/maintenance"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/node"
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
	// membership.HookPromote: before each promotion attempt) and of a
	// founder's first start (membership.HookRecording, HookRecorded,
	// HookEtcdStarted). An error aborts Run there, as a crash would (tests).
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

// Agent is one node's agent: the lifecycle stages and the job table
// (lifecycle.go), and the wiring of the jobs to the node. Create it with New
// and call Run once.
type Agent struct {
	opts Options
	cfg  *config.Config
	log  *slog.Logger
	rec  *report.Recorder
	now  func() time.Time

	// Filled in by the stages, in order.
	id        identity.Identity
	decision  membership.Decision
	ready     chan struct{}
	readyOnce sync.Once
	// certified is closed once the identity and certificates are known.
	certified chan struct{}

	discMu sync.Mutex
	disc   discovery.Source // discovery() builds it once

	// etcd is the local member; node is what the jobs see of this node.
	etcd *localetcd.Member
	node jobNode

	// The jobs, each in its package beside its planner.
	certs      *certs.Job
	members    *membership.Job
	changes    *rollout.ChangeJob
	caRestart  *rollout.CAJob
	maint      *maintenance.Job
	recovery   *recovery.Job
	backups    *schedule.Job
	divergence *hashcheck.Job
	dns        *dnsrecords.Job
	fleet      *fleet.Job // nil unless fleet.notices is imds
	fleetLock  *fleetlock.Job
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
	a := &Agent{opts: opts, cfg: opts.Config, log: opts.Logger, now: opts.Now, ready: make(chan struct{}), certified: make(chan struct{})}
	a.rec = report.NewRecorder(report.NodeReport{
		PID:     os.Getpid(),
		Version: opts.Version,
		CertDir: opts.Config.PKI.Dir,
	}, opts.Now)
	bundle := rollout.NewLoadedBundle(filepath.Join(opts.Config.PKI.Dir, pki.CACertFile))
	a.etcd = localetcd.New(localetcd.Options{Config: opts.Config, Runtime: opts.Runtime, Logger: opts.Logger, Recorder: a.rec, Bundle: bundle})
	a.node = jobNode{a: a, Member: a.etcd}
	a.recovery = recovery.NewJob(recoveryNode{a.node})
	a.members = membership.NewJob(membershipNode{a.node}, membership.Options{Hook: opts.JoinHook, LearnerCatchUpTimeout: opts.LearnerCatchUpTimeout})
	a.backups = schedule.NewJob(a.node)
	a.divergence = hashcheck.NewJob(a.node)
	a.dns = dnsrecords.NewJob(a.node, func(ctx context.Context) (dnsrecords.Store, error) {
		return dnsrecords.NewRoute53(ctx, opts.Config.Clients.Route53)
	})
	a.fleetLock = fleetlock.NewJob(a.node)
	a.maint = maintenance.NewJob(a.node)
	a.changes = rollout.NewChangeJob(a.node, opts.ChangeReadyTimeout)
	a.caRestart = rollout.NewCAJob(a.node, bundle)
	// The CA restart looks at the bundle etcd loaded after each renewal.
	a.certs = certs.NewJob(a.node, func(ctx context.Context) { _ = a.caRestart.Run(ctx) })
	a.fleet = a.newFleetJob()
	return a, nil
}

// Ready is closed once the local member is healthy, a voter and caught up.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Report returns the agent's current published state.
func (a *Agent) Report() report.NodeReport { return a.rec.Snapshot() }

// identityStage reads the node's identity, retrying until it succeeds: a
// replacement instance may boot while IMDS is throttled (HTTP 429), slow or
// not up yet, and an agent that exited instead would soon hit the unit's
// start limit and stay down for good. Nothing IMDS answers is a
// configuration error of the agent: even a refused IMDSv2 token is fixed
// on the running instance (modify-instance-metadata-options).
func (a *Agent) identityStage(ctx context.Context) error {
	// Said once: each retry's STATUS= stays until the next attempt's outcome.
	a.setPhase(report.PhaseIdentity, "reading node identity from "+a.identitySource())
	return node.Retry(ctx, a.node, "reading node identity from "+a.identitySource(), a.resolveIdentity)
}

// identitySource names where the identity comes from, for STATUS=.
func (a *Agent) identitySource() string {
	if a.cfg.Node.Identity == "imds" {
		return "IMDS"
	}
	return a.cfg.Node.Identity
}

func (a *Agent) resolveIdentity(ctx context.Context) error {
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
		return a.discoveryConfigError(err)
	}
	a.decision = d
	if cli != nil {
		a.etcd.SetCluster(cli)
	}
	return nil
}

// discoveryConfigError turns what discovery calls a configuration problem
// (a token without a size, a static list without this node, two nodes
// registered as one) into a config.Error: the agent exits 78 and systemd
// does not restart it in vain up to its start limit. Anything else, err.
func (a *Agent) discoveryConfigError(err error) error {
	d := a.cfg.Cluster.Discovery
	field, value := "cluster.discovery.token", d.Token
	if d.URL != "" {
		field, value = "cluster.discovery.url", d.URL
	}
	var fix string
	switch {
	case errors.Is(err, discovery.ErrNoSize), errors.Is(err, discovery.ErrBadSize):
		fix = "correct " + field + ", or create that token before the nodes boot"
	case errors.Is(err, discovery.ErrNotListed):
		field, value, fix = "cluster.discovery.static", d.Static, "list this node (its member name and peer URL) in cluster.discovery.static"
	case errors.Is(err, discovery.ErrConflict):
		field, value, fix = "node.ip", a.id.PrivateIP.String(), "give every node its own address and member name; remove the stale registration if a node was rebuilt"
	default:
		return err
	}
	return &config.Error{Problems: []config.Problem{{Field: field, Value: value, Problem: err.Error(), Fix: fix}}}
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

// startEtcd is the etcd stage: the member starts (or is adopted) with the
// spec this pass's membership decision asks for.
func (a *Agent) startEtcd(ctx context.Context) error {
	spec := a.specBase()
	spec.InitialCluster = a.decision.InitialCluster
	spec.InitialClusterState = a.decision.InitialClusterState
	spec.InitialClusterToken = a.decision.Token
	if err := spec.Validate(); err != nil {
		return &config.Error{Problems: []config.Problem{{Field: "etcd", Problem: err.Error(), Fix: "correct etcd.extraFlags or the ports"}}}
	}
	a.etcd.Prepare(spec, a.decision.Path == membership.Restart)
	if err := a.waitRuntime(ctx); err != nil {
		return err
	}
	// The image first, on every path: a founder's started record must be
	// followed at once by etcd's start (a pull can take minutes), and a
	// registry not reachable yet at boot is waited for, not an exit.
	if err := node.Retry(ctx, a.node, "fetching the etcd image", a.etcd.FetchImage); err != nil {
		return err
	}
	bootstrap := a.decision.Path == membership.Bootstrap
	if bootstrap {
		if err := a.hook(membership.HookRecording); err != nil {
			return err
		}
		// Before its etcd first starts, a founder records that it did: a
		// blank node finding this record never reuses the member's identity
		// unless its data dir proves that etcd never ran.
		if err := a.members.RecordStarted(ctx, a.decision.Token); err != nil {
			return err
		}
		if err := a.hook(membership.HookRecorded); err != nil {
			return err
		}
	}
	a.setPhase(report.PhaseStartingEtcd, "starting etcd ("+a.opts.Runtime.Name()+")")
	if _, err := a.etcd.Start(ctx); err != nil {
		if bootstrap {
			a.members.ForgetFailedStart(ctx)
		}
		return err
	}
	if bootstrap {
		a.members.ForgetFirstStart()
		return a.hook(membership.HookEtcdStarted)
	}
	return nil
}

// hook calls Options.JoinHook at step (tests).
func (a *Agent) hook(step membership.HookStep) error {
	if a.opts.JoinHook == nil {
		return nil
	}
	return a.opts.JoinHook(step)
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
	a.etcd.Close(a.opts.StopEtcdOnExit)
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
	return a.members.Leave(ctx, nil, progress)
}

type nopNotifier struct{}

func (nopNotifier) Ready(string) error    { return nil }
func (nopNotifier) Status(string) error   { return nil }
func (nopNotifier) Watchdog() error       { return nil }
func (nopNotifier) Stopping(string) error { return nil }
